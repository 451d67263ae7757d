"""Faults combined with the states where they hurt most, on the real control plane.

Each test breaks the API server, its storage or the scheduler's rights while tasks run in a
namespace that is changing, and ends with the same checks: every loop alive and healthy again,
every task reported exactly once, and no pod of ours running where nobody watches it.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import urllib3
from airflow.models.taskinstancekey import TaskInstanceKey
from airflow.utils.state import TaskInstanceState
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from airflow_provider_nsdiscovery.discovery.status import State
from airflow_provider_nsdiscovery.executors.scheduler import DynamicNamespaceKubernetesScheduler
from kubeharness import NAMESPACE_READ_RULES, Cluster, ControlPlane, Identity, wait_until
from kubeharness.lossy_link import LossyLink
from tests.harness.executor_pods import POD_RULES, POD_WATCH_EVERYWHERE_RULES
from tests.integration.executor_helpers import Executor, launch, pod_of, sync_until, watched, worker_pods
from tests.integration.faults import (
    CRASHES,
    DOWNTIME,
    RECOVERY_TIMEOUT,
    SETTLE_TIMEOUT,
    assert_loops_healthy,
    assert_no_pod_unwatched,
    assert_reported_once,
    heartbeats,
    ledger,
    running,
    team_namespace,
    throttled,
    without_verbs,
)

FROZEN_LONGER_THAN_A_CREATE_MAY_TAKE = 30.0
"""Upstream's create has no timeout, so without ours the loop would wait here until the thaw."""


def _process_plane(cluster: Cluster) -> ControlPlane:
    if not isinstance(cluster, ControlPlane):
        pytest.skip("crashing or freezing the API server needs the process control plane, not K3s")
    return cluster


def _state(executor: Executor, name: str) -> State | None:
    assert executor.discovery is not None
    status = executor.discovery.status(name)
    return status.state if status else None


@pytest.mark.parametrize("crash", list(CRASHES))
def test_a_crash_during_a_drain_keeps_the_namespace_watched_until_its_tasks_are_reported_once(
    team: Callable[[], str],
    crash: str,
    outage: Cluster,
    scheduler: Identity,
    selector_label: str,
    admin: client.CoreV1Api,
    make_executor: Callable[..., Executor],
) -> None:
    control_plane = _process_plane(outage)
    name = team()
    executor = make_executor(access_recheck_interval="2")
    reports = ledger(executor)
    keys = [launch(executor, name) for _ in range(2)]
    pods = [running(control_plane, admin, executor, key) for key in keys]
    control_plane.label_namespace(name, {selector_label: None})
    sync_until(executor, lambda: _state(executor, name) is State.DRAINING, f"{name} to drain")

    beating = threading.Event()
    errors: list[BaseException] = []

    def scheduler_loop() -> None:  # the scheduler keeps heartbeating through the crash
        while not beating.is_set():
            try:
                executor.sync()
            except BaseException as err:
                errors.append(err)
            time.sleep(0.1)

    loop = threading.Thread(target=scheduler_loop)
    loop.start()
    try:
        CRASHES[crash](control_plane, DOWNTIME)
        heartbeats_seen = time.monotonic()
        while time.monotonic() - heartbeats_seen < 3:
            assert _state(executor, name) is State.DRAINING  # a crash is not an answer
            assert name in watched(executor)
            time.sleep(0.1)
    finally:
        beating.set()
        loop.join(10)
    assert errors == []
    assert_no_pod_unwatched(admin, executor)
    control_plane.set_pod_phase(name, pods[0], "Succeeded")
    control_plane.set_pod_phase(name, pods[1], "Failed", exit_code=2)

    assert_reported_once(executor, reports, *keys)
    assert [reports[key][0] for key in keys] == [None, TaskInstanceState.FAILED]  # None: succeeded
    sync_until(
        executor,
        lambda: name not in watched(executor),
        f"the watcher of {name} to stop",
        timeout=SETTLE_TIMEOUT,
    )
    assert _state(executor, name) is State.NOT_SELECTED
    assert_loops_healthy(executor)


def test_429s_from_priority_and_fairness_while_a_namespace_leaves_decide_nothing_until_they_stop(
    team: Callable[[], str],
    control_plane: Cluster,
    scheduler: Identity,
    selector_label: str,
    admin: client.CoreV1Api,
    make_executor: Callable[..., Executor],
) -> None:
    name = team()
    executor = make_executor(access_recheck_interval="1")
    assert executor.discovery is not None
    reports = ledger(executor)
    key = launch(executor, name)
    pod = running(control_plane, admin, executor, key)
    retries = executor.discovery.counters.retries

    with throttled(control_plane, scheduler):
        control_plane.label_namespace(name, {selector_label: None})  # the open watch still tells us

        def refused_and_retried() -> bool:
            """Which request wins the one seat is the server's choice: keep asking until one of
            discovery's own requests about the namespace has been refused with 429."""
            assert executor.discovery is not None
            executor.discovery.invalidate(name, "test: look again while throttled")
            return executor.discovery.counters.retries > retries

        sync_until(executor, refused_and_retried, "a 429 to be retried", timeout=SETTLE_TIMEOUT)
        deadline = time.monotonic() + 4  # more re-checks and retries, refused or not
        while time.monotonic() < deadline:
            executor.sync()
            assert _state(executor, name) in (State.PERMITTED, State.DRAINING)
            assert name in watched(executor)
            assert key in executor.running
            time.sleep(0.1)

    sync_until(
        executor, lambda: _state(executor, name) is State.DRAINING, f"{name} to drain", timeout=SETTLE_TIMEOUT
    )
    assert_no_pod_unwatched(admin, executor)
    control_plane.set_pod_phase(name, pod, "Succeeded")
    assert_reported_once(executor, reports, key)
    sync_until(
        executor,
        lambda: name not in watched(executor),
        f"the watcher of {name} to stop",
        timeout=SETTLE_TIMEOUT,
    )
    assert_loops_healthy(executor)


def test_an_api_server_frozen_past_every_request_timeout_delays_but_loses_nothing(
    team: Callable[[], str],
    outage: Cluster,
    admin: client.CoreV1Api,
    make_executor: Callable[..., Executor],
) -> None:
    control_plane = _process_plane(outage)
    name = team()
    executor = make_executor(access_recheck_interval="1")
    assert executor.discovery is not None
    reports = ledger(executor)
    key = launch(executor, name)
    pod = running(control_plane, admin, executor, key)

    os.kill(control_plane.apiserver_pid, signal.SIGSTOP)
    try:
        executor.discovery.invalidate(name, "test: a 403 while the API server hangs")
        heartbeats(executor, 12)  # past the 10 s every non-watch request may take
        assert _state(executor, name) is State.PERMITTED
        assert name in watched(executor)
    finally:
        os.kill(control_plane.apiserver_pid, signal.SIGCONT)

    assert_no_pod_unwatched(admin, executor)
    control_plane.set_pod_phase(name, pod, "Succeeded")
    assert_reported_once(executor, reports, key)
    assert_loops_healthy(executor)


def test_revoking_the_cluster_wide_pod_watch_falls_back_to_one_watch_per_namespace(
    outage: Cluster,
    ns_factory: Callable[..., str],
    selector_label: str,
    admin: client.CoreV1Api,
    make_executor: Callable[..., Executor],
) -> None:
    control_plane = _process_plane(outage)
    home = ns_factory()
    identity = control_plane.service_account_client(
        home,
        "scheduler",
        cluster_rules=[*NAMESPACE_READ_RULES, *POD_WATCH_EVERYWHERE_RULES],
        namespace_rules={home: POD_RULES},
    )
    name = team_namespace(control_plane, ns_factory, identity, selector_label)
    executor = make_executor(identity)
    assert executor.discovery is not None
    assert executor.discovery.plan.cluster_wide
    reports = ledger(executor)
    key = launch(executor, name)
    pod = running(control_plane, admin, executor, key)

    control_plane.service_account_client(home, "scheduler", cluster_rules=NAMESPACE_READ_RULES)
    control_plane.restart_apiserver()  # the open watch ends; the next one is refused
    sync_until(
        executor,
        lambda: watched(executor) == {home, name},
        "one watcher per namespace instead of the refused cluster-wide one",
        timeout=RECOVERY_TIMEOUT,
    )
    assert not executor.discovery.plan.cluster_wide
    assert_no_pod_unwatched(admin, executor)
    control_plane.set_pod_phase(name, pod, "Succeeded")
    assert_reported_once(executor, reports, key)
    assert_loops_healthy(executor)


def test_async_pod_creation_refused_by_rbac_fails_the_task_with_the_reason_and_creates_no_pod(
    team: Callable[[], str],
    control_plane: Cluster,
    scheduler: Identity,
    admin: client.CoreV1Api,
    make_executor: Callable[..., Executor],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AIRFLOW__KUBERNETES_EXECUTOR__ASYNC_POD_CREATION", "True")
    name = team()
    executor = make_executor()
    assert executor.kube_config.async_pod_creation
    assert _state(executor, name) is State.PERMITTED
    no_create = without_verbs(POD_RULES, "create")
    control_plane.grant(scheduler, name, no_create)  # the table still says permitted: no re-check yet
    reports = ledger(executor)

    key = launch(executor, name)

    assert key not in executor.running
    state, reason = reports[key]
    assert state == TaskInstanceState.FAILED
    assert f"namespace '{name}' is forbidden" in str(reason)
    assert "lacks: create pods" in str(reason)
    assert worker_pods(admin, executor) == []
    assert_loops_healthy(executor)


def _api_down(admin: client.CoreV1Api) -> bool:
    try:
        admin.list_namespace(limit=1, _request_timeout=1)
    except (ApiException, urllib3.exceptions.HTTPError):
        return True
    return False


def test_a_launch_while_the_api_server_is_down_waits_for_it_instead_of_failing_the_task(
    outage: Cluster,
    team: Callable[[], str],
    admin: client.CoreV1Api,
    make_executor: Callable[..., Executor],
) -> None:
    control_plane = _process_plane(outage)
    name = team()
    executor = make_executor()
    reports = ledger(executor)
    restart = threading.Thread(target=control_plane.restart_apiserver, kwargs={"downtime": 6.0})
    restart.start()
    wait_until(lambda: _api_down(admin), "the API server to be down")

    key = launch(executor, name)  # the table says permitted; the create meets a refused connection

    assert key in executor.running  # not failed: a transient error is no answer
    assert reports.finals[key] == 0
    restart.join(RECOVERY_TIMEOUT)
    sync_until(
        executor, lambda: worker_pods(admin, executor), "the pod to be created", timeout=RECOVERY_TIMEOUT
    )
    heartbeats(executor, 2)
    assert len(worker_pods(admin, executor)) == 1  # created once
    control_plane.set_pod_phase(name, pod_of(admin, executor, key).metadata.name, "Succeeded")
    assert_reported_once(executor, reports, key)
    assert_loops_healthy(executor)


@pytest.mark.parametrize("frozen", ["kube-apiserver", "etcd"])
def test_a_create_that_gets_no_answer_frees_the_loop_and_its_retry_makes_exactly_one_pod(
    frozen: str,
    team: Callable[[], str],
    outage: Cluster,
    admin: client.CoreV1Api,
    make_executor: Callable[..., Executor],
) -> None:
    """A frozen API server holds the create until the client gives up; a frozen etcd lets the API
    server store the pod after the client gave up (the answer is lost, the pod is not). Either way
    the scheduler loop goes on, and the retry under the same name leaves one pod for the task."""
    control_plane = _process_plane(outage)
    name = team()
    executor = make_executor()
    reports = ledger(executor)
    pid = control_plane.apiserver_pid if frozen == "kube-apiserver" else control_plane.etcd_pid
    keys: list[TaskInstanceKey] = []
    launching = threading.Thread(target=lambda: keys.append(launch(executor, name)), daemon=True)
    os.kill(pid, signal.SIGSTOP)
    try:
        launching.start()
        launching.join(FROZEN_LONGER_THAN_A_CREATE_MAY_TAKE)
        assert not launching.is_alive(), f"the scheduler loop still waits on a create, {frozen} frozen"
    finally:
        os.kill(pid, signal.SIGCONT)
    launching.join()
    (key,) = keys
    assert key in executor.running  # no answer is no refusal
    assert isinstance(executor.kube_scheduler, DynamicNamespaceKubernetesScheduler)
    unanswered = executor.kube_scheduler.creates.pending(key)
    assert unanswered is not None
    assert reports.finals[key] == 0

    sync_until(executor, lambda: worker_pods(admin, executor), "the retried create", timeout=RECOVERY_TIMEOUT)
    heartbeats(executor, 3)
    assert len(worker_pods(admin, executor)) == 1
    assert pod_of(admin, executor, key).metadata.name == unanswered
    control_plane.set_pod_phase(name, unanswered, "Succeeded")
    assert_reported_once(executor, reports, key)
    assert_no_pod_unwatched(admin, executor)
    assert_loops_healthy(executor)


@pytest.fixture
def lossy_link(scheduler: Identity, tmp_path: Path) -> Iterator[LossyLink]:
    """Requested before make_executor, so it closes after the executor using it has ended."""
    link = LossyLink(scheduler.kubeconfig_path, tmp_path)
    yield link
    link.close()


def test_a_create_whose_answer_is_lost_is_taken_as_made_and_its_task_runs_once(
    lossy_link: LossyLink,
    team: Callable[[], str],
    control_plane: Cluster,
    scheduler: Identity,
    admin: client.CoreV1Api,
    make_executor: Callable[..., Executor],
) -> None:
    """The API server stores the pod but its answer never reaches the scheduler: the retry under
    the same name meets 409 AlreadyExists, which is the answer the first create never heard."""
    name = team()
    executor = make_executor(identity=dataclasses.replace(scheduler, kubeconfig_path=lossy_link.kubeconfig))
    assert isinstance(executor.kube_scheduler, DynamicNamespaceKubernetesScheduler)
    creates = executor.kube_scheduler.creates
    reports = ledger(executor)
    heartbeats(executor, 1)  # the first loop's pod sweep is over, it uses no connection now
    executor.kube_scheduler.kube_client.list_namespaced_pod(name, limit=1)  # the create's connection
    with lossy_link.answers_lost():
        key = launch(executor, name)  # returns once the create's read timeout ends the wait
    unanswered = creates.pending(key)
    assert unanswered is not None
    admin.read_namespaced_pod(unanswered, name)  # it was made: only its answer was lost

    sync_until(executor, lambda: creates.pending(key) is None, "the retry to find the pod made")
    heartbeats(executor, 3)
    assert [pod.metadata.name for pod in worker_pods(admin, executor)] == [unanswered]
    assert key in executor.running
    control_plane.set_pod_phase(name, unanswered, "Succeeded")
    assert_reported_once(executor, reports, key)
    assert_no_pod_unwatched(admin, executor)
    assert_loops_healthy(executor)


def test_a_scheduler_started_while_the_api_server_is_down_starts_and_catches_up(
    team: Callable[[], str],
    outage: Cluster,
    scheduler: Identity,
    admin: client.CoreV1Api,
    make_executor: Callable[..., Executor],
) -> None:
    control_plane = _process_plane(outage)
    name = team()
    restart = threading.Thread(target=control_plane.restart_apiserver, kwargs={"downtime": 8.0})
    restart.start()

    wait_until(lambda: _api_down(admin), "the API server to be down")
    executor = make_executor(initial_sync_timeout="2")  # upstream starts without the API server too
    assert executor.discovery is not None
    restart.join(RECOVERY_TIMEOUT)
    sync_until(
        executor, lambda: name in watched(executor), f"{name} to be discovered", timeout=RECOVERY_TIMEOUT
    )
    assert executor.discovery.identity == scheduler.username

    reports = ledger(executor)
    key = launch(executor, name)
    control_plane.set_pod_phase(name, pod_of(admin, executor, key).metadata.name, "Succeeded")
    assert_reported_once(executor, reports, key)
    assert_loops_healthy(executor)


def test_a_finished_pod_that_may_not_be_deleted_is_reported_once_and_cleaned_up_when_rights_return(
    team: Callable[[], str],
    control_plane: Cluster,
    scheduler: Identity,
    admin: client.CoreV1Api,
    make_executor: Callable[..., Executor],
    caplog: pytest.LogCaptureFixture,
) -> None:
    name = team()
    executor = make_executor(access_recheck_interval="1")
    assert executor.kube_scheduler is not None
    cleanup = executor.kube_scheduler.cleanup  # type: ignore[attr-defined]
    reports = ledger(executor)
    key = launch(executor, name)
    pod = running(control_plane, admin, executor, key)
    watch_only = without_verbs(POD_RULES, "delete", "patch")
    control_plane.grant(scheduler, name, watch_only)  # the RoleBinding loses delete: a lost grant
    sync_until(
        executor, lambda: _state(executor, name) is State.DRAINING, f"{name} to drain", timeout=SETTLE_TIMEOUT
    )

    control_plane.set_pod_phase(name, pod, "Succeeded")
    assert_reported_once(executor, reports, key)
    assert {job.pod for job in cleanup.pending} == {pod}
    assert not [r for r in caplog.records if "re-queueing" in r.getMessage()]  # upstream's spin
    sync_until(
        executor,
        lambda: name not in watched(executor),
        f"the watcher of {name} to stop",
        timeout=SETTLE_TIMEOUT,
    )

    control_plane.grant(scheduler, name, POD_RULES)
    wait_until(
        lambda: not cleanup.pending, "the clean-up to be retried and succeed", timeout=RECOVERY_TIMEOUT
    )
    assert worker_pods(admin, executor) == []
    assert_no_pod_unwatched(admin, executor)
    assert_loops_healthy(executor)
