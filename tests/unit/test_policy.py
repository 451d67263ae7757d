"""The parse-time cluster policy: malformed executor configs become DAG import errors, with no API calls."""

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
from airflow_provider_nsdiscovery.discovery.decide import decide
from airflow_provider_nsdiscovery.discovery.status import State
from airflow_provider_nsdiscovery.executor_config import executor_config_problem
from airflow_provider_nsdiscovery.policy import pod_override_problem, task_policy
from tests.executor_config_forms import LAUNCHABLE, MALFORMED


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


@pytest.mark.parametrize("executor_config", LAUNCHABLE)
def test_launchable_executor_configs_pass(executor_config: Any) -> None:
    task_policy(_task(executor_config))


@pytest.mark.parametrize(("executor_config", "message", "upstream"), MALFORMED)
def test_malformed_executor_config_is_refused_with_the_words_the_executor_uses(
    executor_config: Any, message: str, upstream: str
) -> None:
    with pytest.raises(AirflowClusterPolicyViolation) as err:
        task_policy(_task(executor_config))
    assert str(err.value) == f"task 'transform' of DAG 'team_dag': {message}"


def test_pod_override_problem_keeps_answering_for_code_that_imports_it() -> None:
    assert pod_override_problem({"pod_override": "team-a"}) == executor_config_problem(
        {"pod_override": "team-a"}
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
