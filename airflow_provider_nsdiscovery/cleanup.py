"""Finished pods that could not be cleaned up: retried off the scheduler loop, reported once.

With dynamic namespaces a lost RoleBinding is normal, so deleting (or marking done) the pod of a
finished task can fail with a 403, or because the API server is down. Upstream re-queues the
task's result and reads it again in the same loop, which spins the scheduler. Instead the result
is processed once and the clean-up lands here: one log line per pod, a count for metrics, and
retries with per-pod backoff on a supervised thread until the clean-up succeeds or the pod or
its namespace is gone.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

from airflow_provider_nsdiscovery.discovery.workqueue import WorkQueue
from airflow_provider_nsdiscovery.loops import LoopHealth, Supervisor

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PodCleanupJob:
    action: str  # "delete" or "mark done"
    namespace: str
    pod: str

    def __str__(self) -> str:
        return f"{self.action} pod {self.namespace}/{self.pod}"


class PodCleanup:
    """``act(job)`` performs one clean-up and raises on failure; a 404 must count as success."""

    def __init__(
        self, act: Callable[[PodCleanupJob], None], *, base_delay: float = 1.0, max_delay: float = 300.0
    ) -> None:
        self._act = act
        self._queue: WorkQueue[PodCleanupJob] = WorkQueue(base_delay=base_delay, max_delay=max_delay)
        self._lock = threading.Lock()
        self._pending: set[PodCleanupJob] = set()
        self._supervisor = Supervisor()
        self.health: LoopHealth | None = None

    @property
    def pending(self) -> frozenset[PodCleanupJob]:
        with self._lock:
            return frozenset(self._pending)

    def start(self) -> None:
        self.health = self._supervisor.spawn("nsd-pod-cleanup", self._step)

    def stop(self) -> None:
        self._queue.shut_down()
        self._supervisor.stop()

    def defer(self, job: PodCleanupJob, error: BaseException) -> None:
        with self._lock:
            if job in self._pending:
                return
            self._pending.add(job)
        log.warning("could not %s (%s); the task's result is kept and the clean-up retried", job, error)
        self._queue.add_rate_limited(job)

    def _step(self) -> None:
        job = self._queue.get(timeout=0.5)
        if job is None:
            return
        try:
            self._act(job)
        except Exception as err:
            self._queue.add_rate_limited(job)
            log.debug("retrying later: could not %s: %s", job, err)
        else:
            self._queue.forget(job)
            with self._lock:
                self._pending.discard(job)
            log.info("cleaned up after all: %s", job)
        finally:
            self._queue.done(job)
