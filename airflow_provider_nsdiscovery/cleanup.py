"""Work that must not hold the scheduler loop, and may fail: done on a supervised thread, retried.

With dynamic namespaces a lost RoleBinding is normal, so deleting (or marking done) the pod of a
finished task can fail with a 403, or because the API server is down. Upstream re-queues the
task's result and reads it again in the same loop, which spins the scheduler. Instead the result
is processed once and the clean-up lands here: one log line per pod, a count for metrics, and
retries with per-pod backoff on a supervised thread until the clean-up succeeds or the pod or
its namespace is gone. Writing a refused task's log (a remote upload can block for as long as
the store takes) runs the same way, see executors/refusal_log.py.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

from airflow_provider_nsdiscovery.discovery.workqueue import WorkQueue
from airflow_provider_nsdiscovery.loops import LoopHealth, Supervisor

log = logging.getLogger(__name__)

J = TypeVar("J", bound=Hashable)


class RetriedJobs(Generic[J]):
    """Jobs done by ``act`` on one supervised thread, each retried with its own backoff until done.

    ``act(job)`` does one job and raises on failure. :meth:`submit` hands a job over untried (its
    first try runs on the thread, never on the caller's); :meth:`defer` takes one the caller has
    tried and failed. A job left to retry is logged once, however often it fails again; after
    ``max_attempts`` failed tries (None: never) it is given up with one more line. ``retried``
    ends the first line: what happens meanwhile, in the reader's terms.
    """

    def __init__(
        self,
        name: str,
        act: Callable[[J], None],
        *,
        retried: str,
        base_delay: float = 1.0,
        max_delay: float = 300.0,
        max_attempts: int | None = None,
    ) -> None:
        self._name = name
        self._act = act
        self._retried = retried
        self._max_attempts = max_attempts
        self._queue: WorkQueue[J] = WorkQueue(base_delay=base_delay, max_delay=max_delay)
        self._lock = threading.Lock()
        self._pending: set[J] = set()
        self._supervisor = Supervisor()
        self.health: LoopHealth | None = None

    @property
    def pending(self) -> frozenset[J]:
        """Jobs not done yet: submitted and not tried, or failed and waiting for their retry."""
        with self._lock:
            return frozenset(self._pending)

    def start(self) -> None:
        self.health = self._supervisor.spawn(self._name, self._step)

    def stop(self) -> None:
        self._queue.shut_down()
        self._supervisor.stop()

    def submit(self, job: J) -> None:
        if self._hold(job):
            self._queue.add(job)

    def defer(self, job: J, error: BaseException) -> None:
        if self._hold(job):
            log.warning("could not %s (%s); %s", job, error, self._retried)
            self._queue.add_rate_limited(job)

    def _hold(self, job: J) -> bool:
        with self._lock:
            if job in self._pending:
                return False
            self._pending.add(job)
            return True

    def _step(self) -> None:
        job = self._queue.get(timeout=0.5)
        if job is None:
            return
        try:
            self._act(job)
        except Exception as err:
            self._failed(job, err)
        else:
            if self._queue.failures(job):
                log.info("done after all: %s", job)
            self._queue.forget(job)
            self._release(job)
        finally:
            self._queue.done(job)

    def _failed(self, job: J, err: Exception) -> None:
        failures = self._queue.failures(job) + 1
        if self._max_attempts is not None and failures >= self._max_attempts:
            log.error("gave up after %d tries: could not %s (%s)", failures, job, err)
            self._queue.forget(job)
            self._release(job)
            return
        if failures == 1:
            log.warning("could not %s (%s); %s", job, err, self._retried)
        else:
            log.debug("retrying later: could not %s: %s", job, err)
        self._queue.add_rate_limited(job)

    def _release(self, job: J) -> None:
        with self._lock:
            self._pending.discard(job)


@dataclass(frozen=True)
class PodCleanupJob:
    action: str  # "delete" or "mark done"
    namespace: str
    pod: str

    def __str__(self) -> str:
        return f"{self.action} pod {self.namespace}/{self.pod}"


class PodCleanup(RetriedJobs[PodCleanupJob]):
    """``act(job)`` performs one clean-up and raises on failure; a 404 must count as success."""

    def __init__(
        self, act: Callable[[PodCleanupJob], None], *, base_delay: float = 1.0, max_delay: float = 300.0
    ) -> None:
        super().__init__(
            "nsd-pod-cleanup",
            act,
            retried="the task's result is kept and the clean-up retried",
            base_delay=base_delay,
            max_delay=max_delay,
        )
