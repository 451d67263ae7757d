"""What the churn soak (:mod:`tests.harness.churn_soak`) watches while it runs, from outside the scheduler.

- :class:`HeartbeatSampler`: the scheduler's heartbeats, read from Airflow's job table;
- :class:`PodRecorder`: every executor pod ever created, from an admin watch;
- :class:`PatientKubelet`: the kubelet stand-in, reporting pod phases across API-server restarts;
- :func:`scan_log`: tracebacks, "Exception" lines and size of the scheduler log.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import urllib3
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from kubeharness import Cluster
from tests.harness.kubelet import EXECUTOR_POD_SELECTOR, Kubelet, PodRun, PodWatch

POD_KEY = ("dag_id", "task_id", "run_id", "map_index", "try_number")
"""The executor's pod annotations that name one try of one task instance."""


class HeartbeatSampler(threading.Thread):
    """Reads the running SchedulerJob's ``latest_heartbeat`` from the job table twice a second.

    The table, which is what ``/api/v2/monitor/health`` reports, read directly so that no HTTP round
    trip through a busy api-server inflates an age. Airflow 3.3 commits each heartbeat's timestamp
    one heartbeat late (``Job.heartbeat()`` sets it on the job object after merging that object into
    the session it commits), so the age a reader sees is up to two heartbeat intervals even for a
    healthy scheduler. The values themselves are the scheduler's own clock at each heartbeat, so
    consecutive distinct values give the exact time between two heartbeats: :meth:`gaps`, what a
    stalled scheduler loop stretches. Sampling every 0.5 s misses none: each value stays visible
    for at least one heartbeat interval (1 s or more).
    """

    def __init__(self, database: Path, interval: float = 0.5) -> None:
        super().__init__(name="soak-heartbeat", daemon=True)
        self._database = database
        self._interval = interval
        self._stopped = threading.Event()
        self.beats: list[float] = []
        """Each distinct heartbeat seen, as a POSIX timestamp, in order."""
        self.ages: list[float] = []
        """At each sample, seconds since the heartbeat the table showed (what the API would say)."""
        self.read_failures = 0
        self.load: list[float] = []
        """The machine's 1-minute load average at each sample: other work slows the scheduler too."""

    def stop(self) -> None:
        self._stopped.set()
        if self.is_alive():
            self.join(timeout=10)

    def gaps(self) -> list[tuple[float, float]]:
        """(heartbeat time, seconds since the heartbeat before it) for each heartbeat but the first."""
        return [(later, later - earlier) for earlier, later in zip(self.beats, self.beats[1:], strict=False)]

    def run(self) -> None:
        while not self._stopped.wait(self._interval):
            self.load.append(os.getloadavg()[0])
            try:
                with contextlib.closing(
                    sqlite3.connect(f"file:{self._database}?mode=ro", uri=True, timeout=2)
                ) as db:
                    row = db.execute(
                        "SELECT max(latest_heartbeat) FROM job "
                        "WHERE job_type = 'SchedulerJob' AND state = 'running'"
                    ).fetchone()
            except sqlite3.Error:
                self.read_failures += 1
                continue
            if row is None or row[0] is None:
                self.read_failures += 1
                continue
            beat = datetime.fromisoformat(str(row[0]))
            beat = (beat if beat.tzinfo else beat.replace(tzinfo=UTC)).astimezone(UTC)
            self.ages.append((datetime.now(UTC) - beat).total_seconds())
            if not self.beats or beat.timestamp() > self.beats[-1]:
                self.beats.append(beat.timestamp())


@dataclass(frozen=True)
class SeenPod:
    namespace: str
    name: str
    uid: str
    annotations: dict[str, str]

    @property
    def key(self) -> tuple[str, ...]:
        """dag_id, task_id, run_id, map_index ("-1" for an unmapped task), try_number."""
        return tuple(self.annotations.get(name, "-1" if name == "map_index" else "") for name in POD_KEY)


class PodRecorder:
    """Every executor pod ever seen, from an admin watch over all namespaces (not a final list)."""

    def __init__(self, cluster: Cluster) -> None:
        self._api_client = cluster.admin_api_client()
        self._lock = threading.Lock()
        self._pods: dict[str, SeenPod] = {}
        self._watch = PodWatch(self._api_client, self._record, label_selector=EXECUTOR_POD_SELECTOR)

    def start(self) -> PodRecorder:
        self._watch.start_and_sync()
        return self

    def stop(self) -> None:
        self._watch.stop()
        self._api_client.close()

    def pods(self, also_ran: Sequence[PodRun] = ()) -> list[SeenPod]:
        """Every pod seen, plus pods the kubelet stand-in ran (a re-list after a 410 may skip one)."""
        with self._lock:
            seen = dict(self._pods)
        for run in also_ran:
            seen.setdefault(run.uid, SeenPod(run.namespace, run.name, run.uid, dict(run.annotations)))
        return list(seen.values())

    def _record(self, kind: str, pod: client.V1Pod) -> None:
        meta = pod.metadata
        with self._lock:
            self._pods.setdefault(
                meta.uid, SeenPod(meta.namespace, meta.name, meta.uid, dict(meta.annotations or {}))
            )


class PatientKubelet(Kubelet):
    """Reports a pod's phase until the API server takes it, as a real kubelet does.

    The stand-in tries once; across an API-server restart a finished pod would then stay Running
    for ever, which would be the harness's fault, not the executor's.
    """

    report_deadline = 120.0

    def _set_phase(self, run: PodRun, phase: Any, exit_code: int | None = None) -> None:
        deadline, delay = time.monotonic() + self.report_deadline, 0.2
        while True:
            try:
                self.cluster.set_pod_phase(run.namespace, run.name, phase, exit_code=exit_code)
                return
            except ApiException as err:
                if err.status == 404:  # deleted meanwhile: the watch kills its process
                    run.deleted = True
                    self._kill(run)
                    return
            except (urllib3.exceptions.HTTPError, OSError):
                pass
            if self._stopped.wait(delay) or time.monotonic() > deadline:
                return
            delay = min(delay * 2, 2.0)


@dataclass(frozen=True)
class LogScan:
    tracebacks: int
    exception_lines: int
    """Lines containing "Exception" (tracebacks' last lines, "ApiException" in messages, ...)."""
    exception_in_thread: int
    """Python's report of a thread that died of an exception."""
    size: int


TRACEBACK = "Traceback (most recent call last)"


def scan_log(path: Path) -> LogScan:
    tracebacks = exceptions = in_thread = 0
    with path.open("rb") as handle:
        for raw in handle:
            line = raw.decode(errors="replace")
            tracebacks += TRACEBACK in line
            exceptions += "Exception" in line
            in_thread += "Exception in thread" in line
    return LogScan(tracebacks, exceptions, in_thread, path.stat().st_size)
