"""DynamicNamespaceKubernetesExecutor against a real API server, as the scheduler drives it.

The scheduler's identity is a ServiceAccount token with namespaces get/list/watch cluster-wide and
pod rights only where a test grants them. No kubelet runs: pods stay Pending until a test writes
their status, the way a kubelet would.
"""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace
from typing import TYPE_CHECKING, cast

import pytest
from airflow.utils.state import TaskInstanceState
from kubernetes import client
from kubernetes.client import models as k8s

from airflow_provider_nsdiscovery.discovery.status import State
from kubeharness import NAMESPACE_READ_RULES, Cluster, Identity, PodPhase, wait_until
from tests.harness.executor_pods import POD_RULES, POD_WATCH_EVERYWHERE_RULES
from tests.integration.executor_helpers import (
    Executor,
    discovery_of,
    launch,
    pod_of,
    scheduler_of,
    status_of,
    sync_until,
    watched,
    worker_pods,
)
from tests.integration.faults import without_verbs

if TYPE_CHECKING:
    from airflow.models.taskinstance import TaskInstance


def test_executor_watches_home_and_permitted_namespaces_and_launches_there(
    control_plane: Cluster,
    ns_factory: Callable[..., str],
    scheduler: Identity,
    selector_label: str,
    admin: client.CoreV1Api,
    make_executor: Callable[..., Executor],
) -> None:
    team = ns_factory(labels={selector_label: "true"})
    control_plane.grant(scheduler, team, POD_RULES)
    unlabelled = ns_factory()
    control_plane.grant(scheduler, unlabelled, POD_RULES)

    executor = make_executor()

    assert watched(executor) == {scheduler.namespace, team}
    assert all(w.is_alive() for w in scheduler_of(executor).kube_watchers.values())
    home_task, team_task = launch(executor), launch(executor, team)
    assert pod_of(admin, executor, home_task).metadata.namespace == scheduler.namespace
    assert pod_of(admin, executor, team_task).metadata.namespace == team


def test_label_added_at_runtime_starts_a_watcher_and_pods_are_created_there(
    control_plane: Cluster,
    ns_factory: Callable[..., str],
    scheduler: Identity,
    selector_label: str,
    admin: client.CoreV1Api,
    make_executor: Callable[..., Executor],
) -> None:
    team = ns_factory()
    control_plane.grant(scheduler, team, POD_RULES)
    executor = make_executor()
    assert team not in watched(executor)

    control_plane.label_namespace(team, {selector_label: "true"})

    wait_until(lambda: team in watched(executor), f"watcher for {team}")
    key = launch(executor, team)
    assert pod_of(admin, executor, key).metadata.namespace == team
    assert key in executor.running


def test_a_namespace_labelled_a_moment_ago_is_accepted_before_its_watch_event(
    control_plane: Cluster,
    ns_factory: Callable[..., str],
    scheduler: Identity,
    selector_label: str,
    admin: client.CoreV1Api,
    make_executor: Callable[..., Executor],
) -> None:
    team = ns_factory()
    control_plane.grant(scheduler, team, POD_RULES)
    executor = make_executor()
    assert executor.discovery is not None
    executor.discovery._source.stop()  # no watch events from here on: only the on-demand check can see it

    control_plane.label_namespace(team, {selector_label: "true"})
    key = launch(executor, team)

    assert pod_of(admin, executor, key).metadata.namespace == team
    assert team in watched(executor)


def test_label_removed_drains_then_stops_the_watcher(
    control_plane: Cluster,
    ns_factory: Callable[..., str],
    scheduler: Identity,
    selector_label: str,
    admin: client.CoreV1Api,
    make_executor: Callable[..., Executor],
) -> None:
    team = ns_factory(labels={selector_label: "true"})
    control_plane.grant(scheduler, team, POD_RULES)
    executor = make_executor()
    assert executor.discovery is not None
    running = launch(executor, team)
    pod = pod_of(admin, executor, running)
    control_plane.set_pod_phase(team, pod.metadata.name, "Running")

    control_plane.label_namespace(team, {selector_label: None})

    wait_until(lambda: status_of(executor, team).state is State.DRAINING, f"{team} draining")
    assert team in watched(executor)
    refused = launch(executor, team)
    assert executor.event_buffer[refused][0] == TaskInstanceState.FAILED
    assert f"namespace '{team}' is draining" in executor.event_buffer[refused][1]
    assert len(worker_pods(admin, executor)) == 1

    control_plane.set_pod_phase(team, pod.metadata.name, "Failed", exit_code=1)
    sync_until(executor, lambda: running not in executor.running, "the running task to be reported")
    assert executor.event_buffer[running][0] == TaskInstanceState.FAILED
    wait_until(lambda: team not in watched(executor), f"watcher for {team} stopped after draining")
    assert status_of(executor, team).state is State.NOT_SELECTED


def test_a_draining_namespace_stops_its_watcher_once_the_last_pod_is_seen_ending_before_any_sync(
    control_plane: Cluster,
    ns_factory: Callable[..., str],
    scheduler: Identity,
    selector_label: str,
    admin: client.CoreV1Api,
    make_executor: Callable[..., Executor],
) -> None:
    team = ns_factory(labels={selector_label: "true"})
    control_plane.grant(scheduler, team, POD_RULES)
    executor = make_executor()
    key = launch(executor, team)
    pod = pod_of(admin, executor, key)
    control_plane.label_namespace(team, {selector_label: None})
    wait_until(lambda: status_of(executor, team).state is State.DRAINING, f"{team} draining")
    executor.get_event_buffer()  # the launch's "queued"

    control_plane.set_pod_phase(team, pod.metadata.name, "Failed", exit_code=1)

    # No sync() runs: the watcher's event alone releases the namespace.
    wait_until(lambda: team not in watched(executor), f"watcher for {team} stopped on the pod's end")
    assert status_of(executor, team).state is State.NOT_SELECTED
    assert key in executor.running  # not reported yet
    assert key not in executor.event_buffer
    executor.sync()
    assert key not in executor.running
    assert executor.get_event_buffer()[key][0] == TaskInstanceState.FAILED
    executor.sync()
    assert key not in executor.get_event_buffer()  # reported once
    assert discovery_of(executor).placement.items() == []
    assert team not in watched(executor)


def test_deleted_namespace_has_its_watcher_stopped(
    control_plane: Cluster,
    ns_factory: Callable[..., str],
    scheduler: Identity,
    selector_label: str,
    make_executor: Callable[..., Executor],
) -> None:
    team = ns_factory(labels={selector_label: "true"})
    control_plane.grant(scheduler, team, POD_RULES)
    executor = make_executor()
    assert team in watched(executor)

    control_plane.delete_namespace(team)
    control_plane.finish_namespace_deletion(team)

    wait_until(lambda: team not in watched(executor), f"watcher for deleted {team} stopped")


def test_rolebinding_removed_is_forbidden_within_the_recheck_interval(
    control_plane: Cluster,
    ns_factory: Callable[..., str],
    scheduler: Identity,
    selector_label: str,
    make_executor: Callable[..., Executor],
) -> None:
    team = ns_factory(labels={selector_label: "true"})
    control_plane.grant(scheduler, team, POD_RULES)
    executor = make_executor(access_recheck_interval="1")
    assert executor.discovery is not None

    control_plane.revoke(scheduler, team)

    wait_until(lambda: status_of(executor, team).state is State.FORBIDDEN, f"{team} forbidden", timeout=5)
    wait_until(lambda: team not in watched(executor), f"watcher for {team} stopped")


def test_a_403_on_pod_create_invalidates_access_at_once_and_fails_the_task_with_the_reason(
    control_plane: Cluster,
    ns_factory: Callable[..., str],
    scheduler: Identity,
    selector_label: str,
    admin: client.CoreV1Api,
    make_executor: Callable[..., Executor],
) -> None:
    team = ns_factory(labels={selector_label: "true"})
    control_plane.grant(scheduler, team, POD_RULES)
    executor = make_executor(access_recheck_interval="3600")
    assert executor.discovery is not None
    # Take away only "create": the watcher keeps working, so the create call is what sees the 403.
    control_plane.grant(scheduler, team, without_verbs(POD_RULES, "create"))
    assert status_of(executor, team).state is State.PERMITTED  # stale for an hour

    key = launch(executor, team)

    assert executor.event_buffer[key][0] == TaskInstanceState.FAILED
    assert (
        f"scheduler identity {scheduler.username} lacks: create pods in {team}"
        in executor.event_buffer[key][1]
    )
    assert status_of(executor, team).state is State.FORBIDDEN
    assert worker_pods(admin, executor) == []


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("invalid-name", "is not a valid namespace name"),
        ("not-selected", "is not selected: it lacks label"),
        ("forbidden", "is forbidden: scheduler identity"),
        ("excluded", "is excluded: it is listed in [kubernetes_namespace_discovery] exclude_namespaces"),
        ("nonexistent", "does not exist"),
        ("terminating", "is terminating"),
    ],
)
def test_each_refusal_reason_fails_the_task_and_creates_no_pod_anywhere(
    case: str,
    expected: str,
    control_plane: Cluster,
    ns_factory: Callable[..., str],
    scheduler: Identity,
    selector_label: str,
    admin: client.CoreV1Api,
    make_executor: Callable[..., Executor],
) -> None:
    labelled = {selector_label: "true"}
    if case == "invalid-name":
        target = "Team_A.prod"
    elif case == "not-selected":
        target = ns_factory()
        control_plane.grant(scheduler, target, POD_RULES)
    elif case == "forbidden":
        target = ns_factory(labels=labelled)
    elif case == "nonexistent":
        target = "t-does-not-exist"
    else:
        target = ns_factory(labels=labelled)
        control_plane.grant(scheduler, target, POD_RULES)
        if case == "terminating":
            control_plane.delete_namespace(target, hold=True)
    excluded = target if case == "excluded" else "kube-system"
    executor = make_executor(exclude_namespaces=excluded)

    key = launch(executor, target)

    state, message = executor.event_buffer[key]
    assert state == TaskInstanceState.FAILED
    assert message.startswith(f"namespace '{target}' {expected}")
    assert "(" in message  # every refusal says how to fix it
    assert key not in executor.running
    assert worker_pods(admin, executor) == []
    assert executor.task_queue is not None
    assert executor.task_queue.empty()  # failed at once, not queued for a publish retry


@pytest.mark.parametrize(("phase", "exit_code"), [("Succeeded", 0), ("Failed", 1)])
def test_pod_phase_in_a_discovered_namespace_is_reported_for_the_task(
    phase: PodPhase,
    exit_code: int,
    control_plane: Cluster,
    ns_factory: Callable[..., str],
    scheduler: Identity,
    selector_label: str,
    admin: client.CoreV1Api,
    make_executor: Callable[..., Executor],
) -> None:
    team = ns_factory(labels={selector_label: "true"})
    control_plane.grant(scheduler, team, POD_RULES)
    executor = make_executor()
    key = launch(executor, team)
    pod = pod_of(admin, executor, key)

    control_plane.set_pod_phase(team, pod.metadata.name, phase, exit_code=exit_code)

    sync_until(executor, lambda: key not in executor.running, f"{phase} reported")
    state = executor.event_buffer[key][0]
    if phase == "Failed":
        assert state == TaskInstanceState.FAILED
        # Upstream keeps failed pods for debugging unless delete_worker_pods_on_failure is set.
        assert [p.metadata.name for p in worker_pods(admin, executor)] == [pod.metadata.name]
    else:
        # A succeeded pod reports whatever the task wrote to the metadata DB (no row here).
        assert state is None
        wait_until(lambda: worker_pods(admin, executor) == [], "the succeeded pod to be deleted")


def test_a_restarted_scheduler_adopts_pods_in_discovered_namespaces(
    control_plane: Cluster,
    ns_factory: Callable[..., str],
    scheduler: Identity,
    selector_label: str,
    admin: client.CoreV1Api,
    make_executor: Callable[..., Executor],
) -> None:
    team = ns_factory(labels={selector_label: "true"})
    control_plane.grant(scheduler, team, POD_RULES)
    first = make_executor()
    key = launch(first, team)
    pod = pod_of(admin, first, key)
    first.end()

    second = make_executor()
    orphan = cast(
        "TaskInstance",  # what adoption reads of one
        SimpleNamespace(
            key=key,
            queued_by_job_id=first.job_id,
            dag_id=key.dag_id,
            task_id=key.task_id,
            executor_config={"pod_override": k8s.V1Pod(metadata=k8s.V1ObjectMeta(namespace=team))},
        ),
    )
    not_adopted = second.try_adopt_task_instances([orphan])

    assert not_adopted == []
    assert key in second.running
    adopted = admin.read_namespaced_pod(pod.metadata.name, team)
    assert adopted.metadata.labels["airflow-worker"] == str(second.job_id)
    assert len(admin.list_namespaced_pod(team).items) == 1  # no duplicate pod


def test_an_identity_that_may_watch_pods_everywhere_uses_one_cluster_wide_watch(
    control_plane: Cluster,
    ns_factory: Callable[..., str],
    selector_label: str,
    admin: client.CoreV1Api,
    make_executor: Callable[..., Executor],
) -> None:
    home = ns_factory()
    identity = control_plane.service_account_client(
        home,
        "scheduler",
        cluster_rules=[*NAMESPACE_READ_RULES, *POD_WATCH_EVERYWHERE_RULES],
        namespace_rules={home: POD_RULES},
    )
    team, unlabelled = ns_factory(labels={selector_label: "true"}), ns_factory()
    for namespace in (team, unlabelled):
        control_plane.grant(identity, namespace, POD_RULES)

    executor = make_executor(identity)

    assert discovery_of(executor).plan.cluster_wide
    assert watched(executor) == {"ALL_NAMESPACES"}
    assert executor.discovery is not None
    assert executor.discovery.watched() == {home, team}
    key = launch(executor, team)
    refused = launch(executor, unlabelled)  # watching everywhere does not widen where tasks may go
    assert f"namespace '{unlabelled}' is not selected" in executor.event_buffer[refused][1]
    pod = pod_of(admin, executor, key)
    control_plane.set_pod_phase(team, pod.metadata.name, "Failed", exit_code=3)
    sync_until(executor, lambda: key not in executor.running, "the cluster-wide watch to report the pod")
    assert executor.event_buffer[key][0] == TaskInstanceState.FAILED
