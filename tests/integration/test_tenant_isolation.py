"""Namespace owners are not trusted: what one tenant can do in its own namespace never acts for
another tenant's task (docs/reliability.md, Security). Each test is an attack on the real API
server by someone who may label, annotate and create pods in their own opted-in namespace."""

from __future__ import annotations

from collections.abc import Callable

from airflow.utils.state import TaskInstanceState
from kubernetes import client

from airflow_provider_nsdiscovery.discovery.status import State
from airflow_provider_nsdiscovery.discovery.tenancy import ALLOWED_DAGS
from kubeharness import Cluster
from tests.harness.executor_pods import POD_RULES
from tests.integration.executor_helpers import (
    Executor,
    discovery_of,
    launch,
    pod_of,
    status_of,
    sync_until,
    watched,
    worker_pods,
)
from tests.integration.faults import (
    SETTLE_TIMEOUT,
    assert_loops_healthy,
    assert_reported_once,
    heartbeats,
    ledger,
    orphan,
    running,
)


def _forge(admin: client.CoreV1Api, real: client.V1Pod, namespace: str) -> str:
    """A copy of another tenant's task pod, made in ``namespace`` by whoever may create pods there."""
    forged = client.V1Pod(
        metadata=client.V1ObjectMeta(
            name=f"{real.metadata.name}-forged",
            labels=dict(real.metadata.labels),
            annotations=dict(real.metadata.annotations),
        ),
        spec=client.V1PodSpec(containers=[client.V1Container(name="base", image="busybox:1.36")]),
    )
    admin.create_namespaced_pod(namespace, forged)
    return str(forged.metadata.name)


def test_a_pod_forged_in_another_tenant_s_namespace_neither_finishes_nor_fails_the_task(
    team: Callable[[], str],
    control_plane: Cluster,
    admin: client.CoreV1Api,
    make_executor: Callable[..., Executor],
) -> None:
    victim = team()
    attacker = team()
    executor = make_executor()
    assert executor.discovery is not None
    reports = ledger(executor)
    key = launch(executor, victim)
    pod = running(control_plane, admin, executor, key)

    forged = _forge(admin, pod_of(admin, executor, key), attacker)
    control_plane.set_pod_phase(attacker, forged, "Succeeded")
    sync_until(
        executor, lambda: discovery_of(executor).counters.foreign_pods > 0, "the forged pod to be seen"
    )
    heartbeats(executor, 1)

    assert key in executor.running  # neither finished nor failed by the forgery
    assert reports.finals[key] == 0
    control_plane.set_pod_phase(victim, pod, "Failed", exit_code=3)
    assert_reported_once(executor, reports, key)
    assert reports[key][0] == TaskInstanceState.FAILED
    assert_loops_healthy(executor)


def test_a_pod_forged_for_another_tenant_s_task_is_not_adopted_after_a_scheduler_restart(
    team: Callable[[], str],
    admin: client.CoreV1Api,
    make_executor: Callable[..., Executor],
) -> None:
    victim, attacker = team(), team()
    first = make_executor()
    key = launch(first, victim)
    real = pod_of(admin, first, key)
    forged = _forge(admin, real, attacker)
    second = make_executor()

    assert second.try_adopt_task_instances([orphan(key, first.job_id, victim)]) == []

    worker = "airflow-worker"
    assert admin.read_namespaced_pod(real.metadata.name, victim).metadata.labels[worker] == str(second.job_id)
    assert admin.read_namespaced_pod(forged, attacker).metadata.labels[worker] == str(first.job_id)
    assert second.discovery is not None
    assert second.discovery.placement.namespace_of(key) == victim


def test_a_tenant_opening_its_namespace_to_every_dag_opens_no_other_namespace(
    team: Callable[[], str],
    control_plane: Cluster,
    admin: client.CoreV1Api,
    make_executor: Callable[..., Executor],
) -> None:
    opened = team()
    guarded = team()
    with control_plane.admin_api_client() as api:
        core = client.CoreV1Api(api)
        core.patch_namespace(guarded, {"metadata": {"annotations": {ALLOWED_DAGS: "etl_*"}}})
        core.patch_namespace(opened, {"metadata": {"annotations": {ALLOWED_DAGS: "*"}}})
    executor = make_executor()

    allowed = launch(executor, opened)  # DAG "nsd_dag"
    refused = launch(executor, guarded)

    assert allowed in executor.running
    assert refused not in executor.running
    assert f"namespace '{guarded}' does not accept this task" in str(executor.event_buffer[refused][1])
    assert [p.metadata.namespace for p in worker_pods(admin, executor)] == [opened]


def test_a_tenant_removing_its_label_drains_only_its_own_namespace(
    team: Callable[[], str],
    control_plane: Cluster,
    selector_label: str,
    admin: client.CoreV1Api,
    make_executor: Callable[..., Executor],
) -> None:
    leaving = team()
    staying = team()
    executor = make_executor()
    assert executor.discovery is not None
    reports = ledger(executor)
    keys = {name: launch(executor, name) for name in (leaving, staying)}
    pods = {name: running(control_plane, admin, executor, key) for name, key in keys.items()}

    control_plane.label_namespace(leaving, {selector_label: None})
    sync_until(executor, lambda: status_of(executor, leaving).state is State.DRAINING, f"{leaving} to drain")

    assert status_of(executor, staying).state is State.PERMITTED
    assert launch(executor, staying) in executor.running  # the other tenant still launches
    for name, pod in pods.items():
        control_plane.set_pod_phase(name, pod, "Succeeded")
    assert_reported_once(executor, reports, *keys.values())
    sync_until(
        executor,
        lambda: leaving not in watched(executor),
        f"{leaving}'s watcher to stop",
        timeout=SETTLE_TIMEOUT,
    )
    assert staying in watched(executor)


def test_a_candidate_named_like_a_system_namespace_is_never_used(
    control_plane: Cluster,
    ns_factory: Callable[..., str],
    selector_label: str,
    admin: client.CoreV1Api,
    make_executor: Callable[..., Executor],
) -> None:
    """Candidate mode: the scheduler may not list namespaces; an operator's candidate list that
    includes kube-system (granted or not) still never gets a task there."""
    home = ns_factory()
    identity = control_plane.service_account_client(
        home, "scheduler", namespace_rules={home: POD_RULES, "kube-system": POD_RULES}
    )
    executor = make_executor(identity, candidate_namespaces=f"kube-system,{home}", initial_sync_timeout="3")
    assert executor.discovery is not None

    key = launch(executor, "kube-system")

    assert executor.discovery.status("kube-system").state is State.EXCLUDED  # type: ignore[union-attr]
    assert "namespace 'kube-system' is excluded" in str(executor.event_buffer[key][1])
    assert "kube-system" not in watched(executor)
    assert worker_pods(admin, executor) == []
