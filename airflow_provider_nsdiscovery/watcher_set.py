"""Pod-watcher lifecycle as desired-state reconciliation.

The state table says which namespaces should be watched (desired); the running watchers are the
actual state. :meth:`WatcherSet.reconcile` diffs the two and acts: start what is missing, restart
what died, stop what is no longer wanted. It is idempotent, so it is called freely: on every
discovery change. The scheduler's per-loop health check is :meth:`WatcherSet.check`, which costs
nothing until a watcher has said that it ended: a scan of every watcher on every scheduler loop
was O(watched namespaces) per loop, paid again by each task launch at thousands of namespaces.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar

log = logging.getLogger(__name__)


class Watcher(Protocol):
    """The part of ``multiprocessing.Process`` the upstream executor uses on its watchers."""

    def start(self) -> None: ...
    def is_alive(self) -> bool: ...
    def terminate(self) -> None: ...
    def join(self, timeout: float | None = None) -> None: ...


W = TypeVar("W", bound=Watcher)


@dataclass(frozen=True)
class ReconcileResult:
    started: frozenset[str] = field(default_factory=frozenset)
    restarted: frozenset[str] = field(default_factory=frozenset)
    stopped: frozenset[str] = field(default_factory=frozenset)


class WatcherSet(Generic[W]):
    """Running watchers keyed by namespace; ``running`` is the live dict, safe to iterate after stop."""

    def __init__(self, factory: Callable[[str], W]) -> None:
        self._factory = factory
        self._lock = threading.Lock()
        self.running: dict[str, W] = {}
        self._ended: set[W] = set()  # watchers that said they ended, until a reconcile acts on them

    def ended(self, namespace: str, watcher: W) -> None:
        """Called by a watcher's own thread as it ends, whatever ends it; a stopped one is ignored."""
        with self._lock:
            if self.running.get(namespace) is watcher:
                self._ended.add(watcher)

    def check(self, desired: Callable[[], Iterable[str]]) -> ReconcileResult | None:
        """The health check: reconcile to ``desired()`` only if a running watcher ended since the last one."""
        with self._lock:
            if not self._ended:
                return None
        return self.reconcile(desired())

    def stop_unwanted(self, desired: Iterable[str]) -> frozenset[str]:
        """Stop the watchers not in ``desired`` now, if that needs no wait; start nothing.

        Stopping is cheap (a flag and a socket shutdown) and callers want it done at once, while
        starting waits for threads; so while a reconcile holds the set (starting a batch), this
        returns without waiting and the stop is left to the next reconcile.
        """
        wanted = frozenset(desired)
        if not self._lock.acquire(blocking=False):
            return frozenset()
        try:
            stop = frozenset(set(self.running) - wanted)
            for namespace in stop:
                self.running.pop(namespace).terminate()
        finally:
            self._lock.release()
        if stop:
            log.info("pod watchers: stopped %s; now watching %d namespaces", sorted(stop), len(self.running))
        return stop

    def reconcile(self, desired: Iterable[str]) -> ReconcileResult:
        """Make the running watchers match ``desired``: start, restart dead ones, stop the rest."""
        wanted = frozenset(desired)
        with self._lock:
            stop = set(self.running) - wanted
            ended, self._ended = self._ended, set()
            dead = {
                ns
                for ns in wanted & set(self.running)
                if self.running[ns] in ended or not self.running[ns].is_alive()
            }
            start = wanted - set(self.running)
            for namespace in stop | dead:
                self.running.pop(namespace).terminate()
            for namespace in dead:
                log.error("pod watcher for namespace '%s' died; restarting it", namespace)
            for namespace in sorted(start | dead):
                watcher = self._factory(namespace)
                watcher.start()
                self.running[namespace] = watcher
        result = ReconcileResult(frozenset(start), frozenset(dead), frozenset(stop))
        if result.started or result.stopped:
            log.info(
                "pod watchers: started %s, stopped %s; now watching %d namespaces",
                sorted(result.started) or "none",
                sorted(result.stopped) or "none",
                len(wanted),
            )
        return result
