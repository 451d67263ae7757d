"""A keyed work queue with the semantics of client-go's ``util/workqueue``.

Event handlers only put a key here; workers take keys out and reconcile them. Three properties
make the controller correct without further locking:

- **de-duplicating**: a key added ten times before a worker takes it is processed once;
- **stingy**: a key being processed is never handed to a second worker; if it is added again
  meanwhile it is marked dirty and handed out again once the first worker calls :meth:`done`,
  so the later observation is never lost;
- **rate-limited retries**: :meth:`add_rate_limited` re-adds a key after a per-key exponential
  backoff, and :meth:`forget` resets it after a success.

Delays are measured on an injected clock, so unit tests move time instead of sleeping.
"""

from __future__ import annotations

import heapq
import itertools
import random
import threading
import time
from collections import deque
from collections.abc import Hashable
from typing import Generic, Protocol, TypeVar

K = TypeVar("K", bound=Hashable)


class Clock(Protocol):
    """Seconds on a monotonic scale; the only notion of time the controller uses."""

    def now(self) -> float: ...


class MonotonicClock:
    def now(self) -> float:
        return time.monotonic()


class WorkQueue(Generic[K]):
    """See the module docstring. ``get`` blocks; ``get_nowait`` serves deterministic tests."""

    def __init__(
        self,
        clock: Clock | None = None,
        *,
        base_delay: float = 0.2,
        max_delay: float = 30.0,
    ) -> None:
        self._clock = clock or MonotonicClock()
        self._base_delay = base_delay
        self._max_delay = max_delay
        self._cond = threading.Condition()
        self._ready: deque[K] = deque()
        self._dirty: set[K] = set()
        self._processing: set[K] = set()
        # (due, sequence, key); the earliest due time per key wins, later duplicates are dropped.
        self._delayed: list[tuple[float, int, K]] = []
        self._due: dict[K, float] = {}
        self._sequence = itertools.count()
        self._failures: dict[K, int] = {}
        self._shut_down = False

    # producers ---------------------------------------------------------------------------------

    def add(self, key: K, *, urgent: bool = False) -> None:
        """Queue ``key`` now; ``urgent`` puts it in front (a task is waiting on its answer)."""
        with self._cond:
            self._add_locked(key, urgent=urgent)

    def add_after(self, key: K, delay: float) -> None:
        if delay <= 0:
            self.add(key)
            return
        with self._cond:
            if self._shut_down:
                return
            due = self._clock.now() + delay
            if self._due.get(key, float("inf")) <= due:
                return
            self._due[key] = due
            heapq.heappush(self._delayed, (due, next(self._sequence), key))
            self._cond.notify()

    def add_rate_limited(self, key: K) -> float:
        """Re-add ``key`` after its next backoff delay; returns the delay chosen."""
        with self._cond:
            failures = self._failures.get(key, 0)
            self._failures[key] = failures + 1
        ceiling = min(self._max_delay, self._base_delay * 2 ** min(failures, 32))
        delay = random.uniform(ceiling / 2, ceiling)
        self.add_after(key, delay)
        return delay

    def forget(self, key: K) -> None:
        """Reset ``key``'s backoff: its last attempt succeeded."""
        with self._cond:
            self._failures.pop(key, None)

    def failures(self, key: K) -> int:
        with self._cond:
            return self._failures.get(key, 0)

    # consumers ---------------------------------------------------------------------------------

    def get(self, timeout: float | None = None) -> K | None:
        """The next key to process, or None after ``timeout`` seconds or once shut down."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while True:
                if self._shut_down:
                    return None
                self._promote_due_locked()
                if self._ready:
                    return self._take_locked()
                wait = self._until_next_due_locked()
                if deadline is not None:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        return None
                    wait = remaining if wait is None else min(wait, remaining)
                self._cond.wait(wait)

    def get_nowait(self) -> K | None:
        with self._cond:
            if self._shut_down:
                return None
            self._promote_due_locked()
            return self._take_locked() if self._ready else None

    def done(self, key: K) -> None:
        """The worker finished ``key``; if it was added meanwhile, it is handed out again."""
        with self._cond:
            self._processing.discard(key)
            if key in self._dirty:
                self._ready.append(key)
                self._cond.notify()

    def shut_down(self) -> None:
        with self._cond:
            self._shut_down = True
            self._cond.notify_all()

    # introspection -----------------------------------------------------------------------------

    def busy(self) -> bool:
        """Whether any key is ready or being processed (delayed keys do not count)."""
        with self._cond:
            self._promote_due_locked()
            return bool(self._ready or self._processing)

    # internals ---------------------------------------------------------------------------------

    def _add_locked(self, key: K, *, urgent: bool) -> None:
        if self._shut_down:
            return
        if key in self._dirty:
            if urgent and key not in self._processing and key in self._ready:
                self._ready.remove(key)
                self._ready.appendleft(key)
            return
        self._dirty.add(key)
        if key in self._processing:
            return  # handed out again by done()
        if urgent:
            self._ready.appendleft(key)
        else:
            self._ready.append(key)
        self._cond.notify()

    def _take_locked(self) -> K:
        key = self._ready.popleft()
        self._dirty.discard(key)
        self._processing.add(key)
        return key

    def _promote_due_locked(self) -> None:
        now = self._clock.now()
        while self._delayed and self._delayed[0][0] <= now:
            due, _, key = heapq.heappop(self._delayed)
            if self._due.get(key) == due:
                del self._due[key]
                self._add_locked(key, urgent=False)

    def _until_next_due_locked(self) -> float | None:
        while self._delayed and self._due.get(self._delayed[0][2]) != self._delayed[0][0]:
            heapq.heappop(self._delayed)  # superseded by an earlier due time for the same key
        if not self._delayed:
            return None
        return max(0.0, self._delayed[0][0] - self._clock.now())
