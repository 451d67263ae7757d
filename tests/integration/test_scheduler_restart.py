"""Fault injection against the real control plane: the scheduler process is killed mid-run.

The next scheduler must adopt the dead one's pods in every namespace discovery finds, including one
whose label went while no scheduler ran, without creating any pod twice. Outcomes are asserted,
never durations.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TextIO

import pytest
from airflow.models.taskinstancekey import TaskInstanceKey
from airflow.utils.state import TaskInstanceState
from kubernetes import client

from kubeharness import Cluster, Identity
from tests.harness.executor_pods import POD_RULES
from tests.integration.executor_helpers import (
    TEMPLATE,
    Executor,
    launch,
    sync_until,
    watched,
)
from tests.integration.faults import (
    RECOVERY_TIMEOUT,
    SETTLE_TIMEOUT,
    orphan,
    running,
    team_namespace,
)

REPO = Path(__file__).resolve().parents[2]


# --------------------------------------------------------------------------------------------
# 7: the scheduler is killed; the next one adopts its pods everywhere

_FIRST_SCHEDULER = """
import json, os, sys, time
from tests.integration.executor_helpers import Executor, launch, watched

reports = os.fdopen(int(sys.argv[3]), "w", buffering=1)

executor = Executor()
executor.job_id = int(sys.argv[1])
executor.start()
keys = [launch(executor, ns or None) for ns in json.loads(sys.argv[2])]
print("started", file=reports)
late = sys.stdin.readline().strip()  # labelled by the test once this scheduler runs
while late not in watched(executor):
    executor.sync()
    time.sleep(0.05)
keys.append(launch(executor, late))
print(json.dumps([list(key) for key in keys]), file=reports)
time.sleep(3600)  # until SIGKILL
"""


def _executor_environment(scheduler: Identity, selector_label: str) -> dict[str, str]:
    """What make_executor sets, for a scheduler in a process of its own."""
    settings = {
        "KUBERNETES_EXECUTOR__IN_CLUSTER": "False",
        "KUBERNETES_EXECUTOR__CONFIG_FILE": str(scheduler.kubeconfig_path),
        "KUBERNETES_EXECUTOR__NAMESPACE": scheduler.namespace,
        "KUBERNETES_EXECUTOR__POD_TEMPLATE_FILE": str(TEMPLATE),
        "KUBERNETES_EXECUTOR__WORKER_CONTAINER_REPOSITORY": "busybox",
        "KUBERNETES_EXECUTOR__WORKER_CONTAINER_TAG": "1.36",
        "KUBERNETES_EXECUTOR__POD_LAUNCH_FAILURE_RETRIES": "0",
        "KUBERNETES_NAMESPACE_DISCOVERY__LABEL_SELECTOR": f"{selector_label}=true",
    }
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p),
        **{f"AIRFLOW__{key}": value for key, value in settings.items()},
    }


class SchedulerProcess:
    """A scheduler in a process of its own, so that it can be SIGKILLed like a crashed one.

    Its reports come on a pipe of their own: sharing stdout with its logs let a log line from a
    watcher thread land in the middle of a report.
    """

    def __init__(self, env: dict[str, str], *args: str) -> None:
        read_end, write_end = os.pipe()
        self.process = subprocess.Popen(
            [sys.executable, "-c", _FIRST_SCHEDULER, *args, str(write_end)],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            text=True,
            env=env,
            cwd=REPO,
            pass_fds=(write_end,),
            start_new_session=True,  # its own process group: the kill takes its children too
        )
        os.close(write_end)
        self._reports: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, args=(os.fdopen(read_end),), daemon=True).start()

    def _read(self, pipe: TextIO) -> None:
        with pipe:
            for line in pipe:
                self._reports.put(line.strip())

    def report(self, what: str) -> str:
        try:
            return self._reports.get(timeout=RECOVERY_TIMEOUT)
        except queue.Empty:
            code = self.process.poll()
            raise AssertionError(f"the first scheduler did not report {what} (exit code {code})") from None

    def tell(self, line: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(f"{line}\n")
        self.process.stdin.flush()

    def kill(self) -> None:
        """Like a crashed scheduler container: the scheduler and every process it started die at once
        (upstream's executor starts a multiprocessing manager, which would outlive its parent)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()


@pytest.fixture
def scheduler_process() -> Iterator[Callable[..., SchedulerProcess]]:
    started: list[SchedulerProcess] = []

    def start(env: dict[str, str], *args: str) -> SchedulerProcess:
        started.append(SchedulerProcess(env, *args))
        return started[-1]

    yield start
    for process in started:
        process.kill()


def test_a_killed_scheduler_s_pods_are_adopted_in_every_discovered_namespace_without_duplicates(
    control_plane: Cluster,
    ns_factory: Callable[..., str],
    scheduler: Identity,
    selector_label: str,
    admin: client.CoreV1Api,
    make_executor: Callable[..., Executor],
    scheduler_process: Callable[..., SchedulerProcess],
) -> None:
    teams = [team_namespace(control_plane, ns_factory, scheduler, selector_label) for _ in range(2)]
    late = ns_factory()
    control_plane.grant(scheduler, late, POD_RULES)
    first_job_id = 20_000_001  # outside make_executor's range, so the second scheduler's differs
    first = scheduler_process(
        _executor_environment(scheduler, selector_label), str(first_job_id), json.dumps(["", *teams])
    )
    assert first.report("that it started") == "started"
    control_plane.label_namespace(late, {selector_label: "true"})  # discovered while it runs
    first.tell(late)
    keys = [TaskInstanceKey(*key) for key in json.loads(first.report("its tasks"))]
    namespaces = [scheduler.namespace, *teams, late]
    pods = admin.list_pod_for_all_namespaces(label_selector=f"airflow-worker={first_job_id}").items
    assert sorted(p.metadata.namespace for p in pods) == sorted(namespaces)
    for pod in pods:
        control_plane.set_pod_phase(pod.metadata.namespace, pod.metadata.name, "Running")

    first.kill()

    second = make_executor()
    orphans = [
        orphan(key, first_job_id, namespace)
        for key, namespace in zip(keys, [None, *teams, late], strict=True)
    ]
    assert second.try_adopt_task_instances(orphans) == []
    assert set(keys) <= second.running
    for _ in range(3):
        second.sync()  # heartbeats must not launch anything for adopted tasks
    for namespace in namespaces:
        in_namespace = admin.list_namespaced_pod(namespace, label_selector="kubernetes_executor=True").items
        assert len(in_namespace) == 1, f"{namespace}: {[p.metadata.name for p in in_namespace]}"
        assert in_namespace[0].metadata.labels["airflow-worker"] == str(second.job_id)
    # The second scheduler watches the adopted pods wherever they run.
    for pod in pods:
        control_plane.set_pod_phase(pod.metadata.namespace, pod.metadata.name, "Failed", exit_code=1)
    sync_until(
        second, lambda: not set(keys) & second.running, "the adopted pods' outcomes", timeout=SETTLE_TIMEOUT
    )
    assert {second.event_buffer[key][0] for key in keys} == {TaskInstanceState.FAILED}


def test_a_restarted_scheduler_adopts_and_drains_pods_where_the_label_went_while_it_was_down(
    control_plane: Cluster,
    ns_factory: Callable[..., str],
    scheduler: Identity,
    selector_label: str,
    admin: client.CoreV1Api,
    make_executor: Callable[..., Executor],
) -> None:
    team = team_namespace(control_plane, ns_factory, scheduler, selector_label)
    first = make_executor()
    key = launch(first, team)
    pod = running(control_plane, admin, first, key)
    first.end()

    control_plane.label_namespace(team, {selector_label: None})
    second = make_executor()
    orphaned = orphan(key, first.job_id, team)

    assert second.try_adopt_task_instances([orphaned]) == []  # not reset while its pod runs on
    assert admin.read_namespaced_pod(pod, team).metadata.labels["airflow-worker"] == str(second.job_id)
    sync_until(
        second,
        lambda: team in watched(second),
        f"{team} drained by the new scheduler",
        timeout=SETTLE_TIMEOUT,
    )
    control_plane.set_pod_phase(team, pod, "Failed", exit_code=1)
    sync_until(second, lambda: key not in second.running, "the adopted pod's outcome", timeout=SETTLE_TIMEOUT)
    sync_until(
        second,
        lambda: team not in watched(second),
        f"the watcher of {team} to stop once drained",
        timeout=SETTLE_TIMEOUT,
    )
