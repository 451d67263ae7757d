"""Bad input gets a clear error naming the input and the fix, and creates nothing.

Each test ends by asking the API server, as admin, for this executor's pods in every namespace.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from airflow.exceptions import AirflowConfigException
from airflow.models.taskinstancekey import TaskInstanceKey
from airflow.utils.state import TaskInstanceState
from kubernetes import client
from kubernetes.client import models as k8s

from airflow_provider_nsdiscovery.discovery.tenancy import ALLOWED_DAGS
from airflow_provider_nsdiscovery.executors import DynamicNamespaceKubernetesExecutor
from kubeharness import Cluster, Identity
from tests.executor_config_forms import MALFORMED
from tests.harness.executor_pods import POD_RULES
from tests.integration.executor_helpers import TEMPLATE, Executor, launch, pod_of, worker_pods


def _run(executor: Executor, executor_config: Any) -> TaskInstanceKey:
    key = TaskInstanceKey("nsd_dag", f"bad_{abs(hash(repr(executor_config))) % 10**8}", "manual__1", 1, -1)
    executor.running.add(key)
    executor.execute_async(
        key, ["airflow", "tasks", "run", key.dag_id, key.task_id, key.run_id], executor_config=executor_config
    )
    executor.sync()
    return key


def _failed_with(executor: Executor, key: TaskInstanceKey) -> str:
    state, info = executor.event_buffer[key]
    assert state == TaskInstanceState.FAILED
    assert key not in executor.running
    return str(info)


def test_invalid_label_selector_stops_the_executor_at_start_quoting_it(
    monkeypatch: pytest.MonkeyPatch, airflow_db: None
) -> None:
    monkeypatch.setenv("AIRFLOW__KUBERNETES_NAMESPACE_DISCOVERY__LABEL_SELECTOR", "airflow-enabled in (true")

    with pytest.raises(AirflowConfigException) as err:
        DynamicNamespaceKubernetesExecutor()

    message = str(err.value)
    assert "[kubernetes_namespace_discovery] label_selector" in message
    assert "'airflow-enabled in (true'" in message


def test_static_namespace_list_alongside_discovery_is_refused_naming_both(
    monkeypatch: pytest.MonkeyPatch, airflow_db: None
) -> None:
    monkeypatch.setenv("AIRFLOW__KUBERNETES_EXECUTOR__MULTI_NAMESPACE_MODE", "True")
    monkeypatch.setenv("AIRFLOW__KUBERNETES_EXECUTOR__MULTI_NAMESPACE_MODE_NAMESPACE_LIST", "team-a,team-b")

    with pytest.raises(AirflowConfigException) as err:
        DynamicNamespaceKubernetesExecutor()

    assert "multi_namespace_mode_namespace_list is set" in str(err.value)
    assert "candidate_namespaces" in str(err.value)


@pytest.mark.parametrize("problem", ["missing", "unreadable"])
def test_missing_or_unreadable_kube_config_fails_start_with_the_path_and_the_fix(
    problem: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, airflow_db: None
) -> None:
    path = tmp_path / "kubeconfig"
    if problem == "unreadable":
        path.write_text("apiVersion: v1\nclusters: [\n")
    monkeypatch.setenv("AIRFLOW__KUBERNETES_EXECUTOR__IN_CLUSTER", "False")
    monkeypatch.setenv("AIRFLOW__KUBERNETES_EXECUTOR__CONFIG_FILE", str(path))
    monkeypatch.setenv("AIRFLOW__KUBERNETES_EXECUTOR__POD_TEMPLATE_FILE", str(TEMPLATE))
    executor = DynamicNamespaceKubernetesExecutor()
    executor.job_id = 1

    with pytest.raises(AirflowConfigException) as err:
        executor.start()

    assert str(path) in str(err.value)
    assert "Point config_file at a readable kubeconfig" in str(err.value)
    assert os.environ["AIRFLOW__KUBERNETES_EXECUTOR__CONFIG_FILE"] == str(path)


@pytest.mark.parametrize(("executor_config", "message", "upstream"), MALFORMED)
def test_each_malformed_executor_config_fails_the_task_with_what_is_wrong_and_the_fix_and_creates_no_pod(
    executor_config: Any,
    message: str,
    upstream: str,
    admin: client.CoreV1Api,
    make_executor: Callable[..., Executor],
) -> None:
    executor = make_executor()

    key = _run(executor, copy.deepcopy(executor_config))

    assert _failed_with(executor, key) == message
    assert worker_pods(admin, executor) == []


@pytest.mark.parametrize(
    "namespace",
    ["x" * 64, "Team-A", "team.a", "team_a", "-team", "team-"],
    ids=["64-chars", "uppercase", "dots", "underscore", "leading-dash", "trailing-dash"],
)
def test_invalid_namespace_name_fails_the_task_naming_it_and_creates_no_pod(
    namespace: str, admin: client.CoreV1Api, make_executor: Callable[..., Executor]
) -> None:
    executor = make_executor()

    key = launch(executor, namespace)

    message = _failed_with(executor, key)
    assert message.startswith(f"namespace '{namespace}' is not a valid namespace name: a namespace must be")
    assert "set metadata.namespace in the task's executor_config pod_override" in message
    assert worker_pods(admin, executor) == []


def test_empty_namespace_in_pod_override_means_the_home_namespace(
    scheduler: Identity, admin: client.CoreV1Api, make_executor: Callable[..., Executor]
) -> None:
    executor = make_executor()

    key = launch(executor, "")

    assert pod_of(admin, executor, key).metadata.namespace == scheduler.namespace


def test_pod_template_namespace_is_overridden_by_the_home_namespace_as_upstream_does(
    ns_factory: Callable[..., str],
    scheduler: Identity,
    admin: client.CoreV1Api,
    make_executor: Callable[..., Executor],
    tmp_path: Path,
) -> None:
    forbidden = ns_factory(labels={"unrelated": "x"})
    template = tmp_path / "template.yaml"
    template.write_text(
        TEMPLATE.read_text().replace("name: placeholder", f"name: placeholder\n  namespace: {forbidden}")
    )
    executor = make_executor()

    key = _run(executor, {"pod_template_file": str(template)})

    assert pod_of(admin, executor, key).metadata.namespace == scheduler.namespace
    assert admin.list_namespaced_pod(forbidden).items == []


def test_namespace_annotation_limits_which_dags_may_run_there(
    control_plane: Cluster,
    ns_factory: Callable[..., str],
    scheduler: Identity,
    selector_label: str,
    admin: client.CoreV1Api,
    make_executor: Callable[..., Executor],
) -> None:
    team = ns_factory(labels={selector_label: "true"})
    control_plane.grant(scheduler, team, POD_RULES)
    with control_plane.admin_api_client() as api:
        client.CoreV1Api(api).patch_namespace(team, {"metadata": {"annotations": {ALLOWED_DAGS: "etl_*"}}})
    executor = make_executor()

    key = launch(executor, team)  # DAG "nsd_dag"

    message = _failed_with(executor, key)
    assert message.startswith(f"namespace '{team}' does not accept this task: its annotation {ALLOWED_DAGS}")
    assert "not 'nsd_dag'" in message
    assert worker_pods(admin, executor) == []

    allowed = TaskInstanceKey("etl_daily", "load", "manual__1", 1, -1)
    executor.running.add(allowed)
    executor.execute_async(
        allowed,
        ["airflow", "tasks", "run", "etl_daily", "load", "manual__1"],
        executor_config={"pod_override": k8s.V1Pod(metadata=k8s.V1ObjectMeta(namespace=team))},
    )
    executor.sync()
    assert [p.metadata.namespace for p in worker_pods(admin, executor)] == [team]


def test_a_dag_id_spoofed_in_pod_override_annotations_does_not_get_past_tenant_policy(
    control_plane: Cluster,
    ns_factory: Callable[..., str],
    scheduler: Identity,
    selector_label: str,
    admin: client.CoreV1Api,
    make_executor: Callable[..., Executor],
) -> None:
    """Upstream merges pod_override last, so a DAG author can set any annotation on the pod; the
    tenant policy is decided from the task's own DAG id."""
    team = ns_factory(labels={selector_label: "true"})
    control_plane.grant(scheduler, team, POD_RULES)
    with control_plane.admin_api_client() as api:
        client.CoreV1Api(api).patch_namespace(team, {"metadata": {"annotations": {ALLOWED_DAGS: "etl_*"}}})
    executor = make_executor()
    spoofed = k8s.V1ObjectMeta(
        namespace=team, annotations={"dag_id": "etl_daily"}, labels={"dag_id": "etl_daily"}
    )

    key = _run(executor, {"pod_override": k8s.V1Pod(metadata=spoofed)})  # DAG "nsd_dag"

    assert "not 'nsd_dag'" in _failed_with(executor, key)
    assert worker_pods(admin, executor) == []
