"""Tenant policy annotations: namespace owners choose which DAGs and teams may use it."""

from __future__ import annotations

import pytest
from kubernetes.client import models as k8s

from airflow_provider_nsdiscovery.discovery.status import NamespaceStatus, State
from airflow_provider_nsdiscovery.discovery.tenancy import ALLOWED_DAGS, ALLOWED_TEAMS, TenantPolicy
from airflow_provider_nsdiscovery.validation import NamespaceRefusal, check_pod_namespace


def _pod(namespace: str, dag_id: str) -> k8s.V1Pod:
    """A pod whose annotations claim ``dag_id``: a DAG author can write any of them."""
    return k8s.V1Pod(metadata=k8s.V1ObjectMeta(namespace=namespace, annotations={"dag_id": dag_id}))


def _permitted(policy: TenantPolicy) -> NamespaceStatus:
    return NamespaceStatus("team-a", State.PERMITTED, "selected", tenancy=policy)


def test_namespace_without_policy_annotations_accepts_every_dag_and_team() -> None:
    policy = TenantPolicy.from_annotations({"unrelated": "x"})
    assert policy.refusal("team-a", "anything", None) is None


def test_allowed_dags_globs_accept_matching_dags() -> None:
    policy = TenantPolicy.from_annotations({ALLOWED_DAGS: "etl_*, reports_*"})
    assert policy.refusal("team-a", "etl_daily", None) is None
    assert policy.refusal("team-a", "reports_weekly", None) is None


def test_dag_outside_allowed_dags_is_refused_with_the_annotation_and_a_fix() -> None:
    policy = TenantPolicy.from_annotations({ALLOWED_DAGS: "etl_*,reports_*"})
    reason, fix = policy.refusal("team-a", "ml_train", None) or ("", "")
    assert (
        reason == f"its annotation {ALLOWED_DAGS} allows only DAGs matching etl_*, reports_*, not 'ml_train'"
    )
    assert fix.startswith(
        f"kubectl annotate namespace team-a --overwrite {ALLOWED_DAGS}=etl_*,reports_*,ml_train"
    )


def test_glob_matching_is_case_sensitive_like_dag_ids() -> None:
    policy = TenantPolicy(allowed_dags=("etl_*",))
    assert policy.refusal("team-a", "ETL_daily", None) is not None


def test_team_outside_allowed_teams_is_refused_and_no_team_is_refused_too() -> None:
    policy = TenantPolicy.from_annotations({ALLOWED_TEAMS: "analytics"})
    assert policy.refusal("team-a", "d", "analytics") is None
    assert "not team 'platform'" in (policy.refusal("team-a", "d", "platform") or ("", ""))[0]
    assert "not tasks of no Airflow team" in (policy.refusal("team-a", "d", None) or ("", ""))[0]


def test_pre_launch_check_refuses_a_dag_the_namespace_does_not_accept() -> None:
    status = _permitted(TenantPolicy(allowed_dags=("etl_*",)))

    with pytest.raises(NamespaceRefusal) as refused:
        check_pod_namespace(_pod("team-a", "ml_train"), lambda name: status, dag_id="ml_train")

    assert refused.value.status.state is State.DENIED
    assert str(refused.value).startswith("namespace 'team-a' does not accept this task: its annotation")


def test_pre_launch_check_passes_an_accepted_dag_and_team() -> None:
    status = _permitted(TenantPolicy(allowed_dags=("etl_*",), allowed_teams=("analytics",)))
    assert (
        check_pod_namespace(_pod("team-a", "etl_x"), lambda name: status, dag_id="etl_x", team="analytics")
        is status
    )


def test_pod_annotations_claiming_an_accepted_dag_do_not_make_another_dag_accepted() -> None:
    """pod_override can set any annotation: the task's own DAG id decides, never the pod's."""
    status = _permitted(TenantPolicy(allowed_dags=("etl_*",)))

    with pytest.raises(NamespaceRefusal) as refused:
        check_pod_namespace(_pod("team-a", "etl_spoofed"), lambda name: status, dag_id="ml_train")

    assert "not 'ml_train'" in str(refused.value)
