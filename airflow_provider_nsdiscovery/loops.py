"""Supervised loops: long-lived threads that no exception can end.

A discovery thread that dies takes a promise with it silently (revoked access never noticed,
draining never finished), so every long-lived thread here runs its work through
:func:`run_supervised`: an exception is logged once per streak of failures, the loop backs off
and tries again, and its :class:`LoopHealth` says whether it is making progress. Only the loop's
own stop event ends it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from airflow_provider_nsdiscovery.streaming import Backoff

log = logging.getLogger(__name__)


@dataclass
class LoopHealth:
    """What an operator needs to know about one loop: is it there, and is it failing now."""

    name: str
    alive: bool = False
    failing_since: float | None = None
    failures: int = 0  # in the current streak
    survived: int = 0  # exceptions survived since start
    last_error: str = ""

    @property
    def healthy(self) -> bool:
        return self.alive and self.failing_since is None

    def progressed(self) -> None:
        """The loop did useful work (a request answered, a watch opened): any failure streak is over.

        Steps that run for minutes (a watch) call this as soon as they are through, so a loop is
        not reported failing for the whole life of the watch that followed its recovery.
        """
        if self.failing_since is not None:
            log.info("%s recovered after %d failed attempts", self.name, self.failures)
            self.failing_since, self.failures = None, 0

    def describe(self) -> str:
        if not self.alive:
            return f"{self.name}: stopped"
        if self.failing_since is None:
            return f"{self.name}: ok"
        return f"{self.name}: failing ({self.failures} in a row, last: {self.last_error})"


def run_supervised(
    health: LoopHealth,
    step: Callable[[], None],
    stopped: threading.Event,
    backoff: Backoff | None = None,
) -> None:
    """Call ``step`` until ``stopped`` is set, surviving every exception with backoff.

    A step that returns counts as progress and ends a failure streak (so does a step that calls
    ``health.progressed()``). Only the first failure of a streak is logged with its traceback; the
    rest of the streak is counted, so an API server that is down for an hour costs one traceback,
    not thousands. Backoff starts afresh with each streak.
    """
    backoff = backoff or Backoff()
    health.alive = True
    try:
        while not stopped.is_set():
            try:
                step()
            except Exception as err:
                if stopped.is_set():
                    return
                if health.failing_since is None:
                    backoff.reset()
                _failed(health, err)
                stopped.wait(backoff.next_delay())
                continue
            health.progressed()
    finally:
        health.alive = False


def _failed(health: LoopHealth, err: Exception) -> None:
    health.survived += 1
    health.failures += 1
    health.last_error = f"{type(err).__name__}: {err}"[:300]
    if health.failing_since is None:
        health.failing_since = time.monotonic()
        log.warning("%s failed; retrying with backoff until it recovers", health.name, exc_info=err)
    else:
        log.debug("%s failed again (%d in a row): %s", health.name, health.failures, health.last_error)


class Supervisor:
    """Owns a set of supervised daemon threads and reports their health."""

    def __init__(self) -> None:
        self._stopped = threading.Event()
        self._threads: list[threading.Thread] = []
        self._health: list[LoopHealth] = []

    @property
    def stopped(self) -> threading.Event:
        return self._stopped

    def spawn(self, name: str, step: Callable[[], None], backoff: Backoff | None = None) -> LoopHealth:
        health = LoopHealth(name)
        thread = threading.Thread(
            target=run_supervised, args=(health, step, self._stopped, backoff), name=name, daemon=True
        )
        self._health.append(health)
        self._threads.append(thread)
        health.alive = True  # from now on: a thread that ends sets it back
        thread.start()
        return health

    def health(self) -> list[LoopHealth]:
        return list(self._health)

    def stop(self, timeout: float = 5.0) -> None:
        self._stopped.set()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
