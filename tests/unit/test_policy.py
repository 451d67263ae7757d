"""The parse-time cluster policy: malformed pod overrides become DAG import errors, with no API calls."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest
from airflow.exceptions import AirflowClusterPolicyViolation
from airflow.sdk import DAG, BaseOperator
from kubernetes import client
from kubernetes.client import models as k8s

from airflow_provider_nsdiscovery.config import DiscoverySettings
from airflow_provider_nsdiscovery.discovery.state import State, decide
from airflow_provider_nsdiscovery.policy import pod_override_problem, task_policy


@pytest.fixture(autouse=True)
def no_api_calls(monkeypatch: pytest.MonkeyPatch) -> None:
    """A policy runs in the DAG processor for every parse: it must never reach the API server."""

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the cluster policy called the Kubernetes API")

    monkeypatch.setattr(client.ApiClient, "call_api", refuse)


def _pod(namespace: object) -> k8s.V1Pod:
    return k8s.V1Pod(metadata=k8s.V1ObjectMeta(namespace=namespace))


def _task(executor_config: Any) -> BaseOperator:
    with DAG("team_dag", schedule=None):
        task = BaseOperator(task_id="transform")
    task.executor_config = executor_config  # set after construction: the constructor coerces None
    return task


@pytest.mark.parametrize(
    "executor_config",
    [
        None,
        {},
        {"pod_override": None},
        {"pod_override": k8s.V1Pod()},
        {"pod_override": _pod(None)},
        {"pod_override": _pod("")},  # falls back to the pod template's namespace, as upstream merges
        {"pod_override": _pod("team-a")},
        {"pod_override": _pod("kube-system")},  # valid name: excluded or not is the executor's call
        {"pod_template_file": "/templates/team-a.yaml"},
    ],
)
def test_launchable_executor_configs_pass(executor_config: Any) -> None:
    assert pod_override_problem(executor_config) is None
    task_policy(_task(executor_config))


def test_executor_config_that_is_not_a_dict_is_refused() -> None:
    with pytest.raises(AirflowClusterPolicyViolation) as err:
        task_policy(_task([_pod("team-a")]))
    assert str(err.value) == (
        "task 'transform' of DAG 'team_dag': executor_config must be a dict such as "
        "{'pod_override': k8s.V1Pod(...)}, not list"
    )


@pytest.mark.parametrize(
    "pod_override", [{"metadata": {"namespace": "team-a"}}, "team-a", k8s.V1ObjectMeta()]
)
def test_pod_override_that_is_not_a_v1pod_is_refused(pod_override: object) -> None:
    problem = pod_override_problem({"pod_override": pod_override})
    assert problem is not None
    assert problem.startswith(
        f"executor_config['pod_override'] must be a kubernetes.client.models.V1Pod, not "
        f"{type(pod_override).__name__}"
    )


def test_invalid_namespace_gets_the_executors_own_reason_and_fix() -> None:
    expected = decide("Team_C", DiscoverySettings(), None, None)
    assert expected.state is State.INVALID_NAME

    with pytest.raises(AirflowClusterPolicyViolation) as err:
        task_policy(_task({"pod_override": _pod("Team_C")}))

    assert str(err.value) == f"task 'transform' of DAG 'team_dag': {expected.message}"
    assert "e.g. 'team-c'" in str(err.value)


@pytest.mark.parametrize("namespace", ["team_a", "-team", "a" * 64, "team.a", "Team"])
def test_syntactically_invalid_namespaces_are_refused(namespace: str) -> None:
    problem = pod_override_problem({"pod_override": _pod(namespace)})
    assert problem is not None
    assert problem.startswith(f"namespace '{namespace}' is not a valid namespace name")


def test_non_string_namespace_is_refused() -> None:
    assert pod_override_problem({"pod_override": _pod(42)}) == (
        "pod_override metadata.namespace must be a string, not int"
    )


def test_dag_with_a_bad_override_becomes_an_import_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Through Airflow's own DAG parsing, as the policy runs when set in airflow_local_settings."""
    from airflow import settings  # noqa: PLC0415 (Airflow settings are read after the test's env)

    try:
        from airflow.dag_processing.dagbag import DagBag  # noqa: PLC0415
    except ImportError:  # Airflow < 3.2
        from airflow.models.dagbag import DagBag  # type: ignore[no-redef]  # noqa: PLC0415

    monkeypatch.setattr(settings, "task_policy", task_policy)
    dag_file = tmp_path / "team_dag.py"
    dag_file.write_text(
        textwrap.dedent(
            """
            import datetime

            from airflow.sdk import DAG
            from airflow.providers.standard.operators.empty import EmptyOperator
            from kubernetes.client import models as k8s

            def override(namespace):
                return {"pod_override": k8s.V1Pod(metadata=k8s.V1ObjectMeta(namespace=namespace))}

            with DAG("team_dag", schedule=None, start_date=datetime.datetime(2026, 1, 1)):
                EmptyOperator(task_id="good", executor_config=override("team-a"))
                EmptyOperator(task_id="bad", executor_config=override("Team_A"))
            """
        )
    )

    bag = DagBag(dag_folder=str(dag_file))

    assert "team_dag" not in bag.dags
    (error,) = bag.import_errors.values()
    assert "task 'bad' of DAG 'team_dag': namespace 'Team_A' is not a valid namespace name" in error
