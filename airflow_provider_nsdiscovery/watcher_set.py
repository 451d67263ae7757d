"""Pod-watcher lifecycle as desired-state reconciliation.

The state table says which namespaces should be watched (desired); the running watchers are the
actual state. :meth:`WatcherSet.reconcile` diffs the two and acts: start what is missing, restart
what died, stop what is no longer wanted. It is idempotent, so it is called freely: on every
discovery change and on every scheduler heartbeat as the health check.
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
            dead = {ns for ns in wanted & set(self.running) if not self.running[ns].is_alive()}
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
