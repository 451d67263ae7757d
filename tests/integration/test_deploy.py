"""deploy/ applied to a real API server, as a cluster admin and a team would apply it.

The claim deploy/ makes: the scheduler ServiceAccount it binds discovers a labelled, granted team
namespace and may use it, yet holds no pod rights cluster-wide. Both halves are checked with that
ServiceAccount's own token, through the same discovery the executor runs.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client, utils
from kubernetes.client.exceptions import ApiException

from airflow_provider_nsdiscovery.cli.format import role_rules
from airflow_provider_nsdiscovery.config import OPTIONS
from airflow_provider_nsdiscovery.discovery.access import access_allowed
from airflow_provider_nsdiscovery.discovery.controller import NamespaceDiscovery
from airflow_provider_nsdiscovery.discovery.permissions import (
    RBAC_WATCH_RULE,
    REQUIRED_PERMISSIONS,
    Permission,
)
from airflow_provider_nsdiscovery.discovery.status import State
from airflow_provider_nsdiscovery.get_provider_info import EXECUTOR
from kubeharness import Cluster, Identity, wait_until

DEPLOY = Path(__file__).parents[2] / "deploy"
PLACEHOLDER = "${TEAM_NAMESPACE}"
# What deploy/ and helm-values.yaml call the scheduler: the chart's release namespace and the
# ServiceAccount name the values file pins.
SCHEDULER_NAMESPACE, SCHEDULER_ACCOUNT = "airflow", "airflow-scheduler"

Manifest = dict[str, Any]


def _manifests(name: str, team_namespace: str | None = None) -> list[Manifest]:
    text = (DEPLOY / name).read_text()
    if team_namespace is not None:
        text = text.replace(PLACEHOLDER, team_namespace)
    return [doc for doc in yaml.safe_load_all(text) if doc]


def _kind(manifests: list[Manifest], kind: str) -> Manifest:
    (found,) = [m for m in manifests if m["kind"] == kind]
    return found


def _allowed(identity: Identity, permission: Permission, namespace: str | None) -> bool:
    return access_allowed(client.AuthorizationV1Api(identity.api_client), permission, namespace)


@pytest.fixture
def applied(control_plane: Cluster) -> Iterator[tuple[Identity, str]]:
    """The scheduler ServiceAccount (which the Helm chart creates) plus deploy/'s manifests.

    Cleans up everything it created, so that the fixed names (the ``airflow`` namespace and the
    cluster-scoped binding) leave nothing behind for other tests sharing the control plane.
    """
    admin = control_plane.admin_api_client()
    core = client.CoreV1Api(admin)
    rbac = client.RbacAuthorizationV1Api(admin)
    had_home = SCHEDULER_NAMESPACE in {ns.metadata.name for ns in core.list_namespace().items}
    team = f"t-deploy-{uuid.uuid4().hex[:8]}"
    try:
        scheduler = control_plane.service_account_client(SCHEDULER_NAMESPACE, SCHEDULER_ACCOUNT)
        for manifest in _manifests("cluster-role.yaml") + _manifests("team-namespace.yaml", team):
            utils.create_from_dict(admin, manifest)
        yield scheduler, team
    finally:
        deletes: tuple[Callable[[], object], ...] = (
            lambda: rbac.delete_cluster_role_binding("airflow-namespace-discovery"),
            lambda: rbac.delete_cluster_role("airflow-namespace-discovery"),
            lambda: core.delete_namespaced_service_account(SCHEDULER_ACCOUNT, SCHEDULER_NAMESPACE),
        )
        for delete in deletes:
            with contextlib.suppress(ApiException):
                delete()
        for namespace in [team] if had_home else [team, SCHEDULER_NAMESPACE]:
            with contextlib.suppress(ApiException):
                control_plane.delete_namespace(namespace)
                control_plane.finish_namespace_deletion(namespace)
        admin.close()


def test_deployed_scheduler_discovers_the_team_namespace_without_cluster_wide_pod_rights(
    applied: tuple[Identity, str],
    start_discovery: Callable[..., NamespaceDiscovery],
    ns_factory: Callable[..., str],
) -> None:
    scheduler, team = applied
    assert scheduler.username == "system:serviceaccount:airflow:airflow-scheduler"
    # RBAC bindings reach the authorizer through a watch: wait until the manifests are in force.
    wait_until(
        lambda: (
            _allowed(scheduler, Permission("list", "namespaces"), None)
            and all(_allowed(scheduler, p, team) for p in REQUIRED_PERMISSIONS)
        ),
        "deploy/ RBAC to take effect",
    )

    # Defaults as deploy/helm-values.yaml leaves them: selector airflow-enabled=true.
    discovery = start_discovery(
        scheduler, home_namespace=SCHEDULER_NAMESPACE, label_selector="airflow-enabled=true"
    )

    assert discovery.mode == "label-selector"
    status = discovery.status(team)
    assert status is not None
    assert status.state is State.PERMITTED, status.message
    assert status.reason == (
        "selected by 'airflow-enabled=true' and system:serviceaccount:airflow:airflow-scheduler "
        "may manage pods there"
    )
    assert team in discovery.watched()

    # No pod rights cluster-wide, nor in a namespace nobody granted.
    elsewhere = ns_factory(labels={"airflow-enabled": "true"})
    for permission in REQUIRED_PERMISSIONS:
        assert not _allowed(scheduler, permission, None), f"{permission} allowed cluster-wide"
        assert not _allowed(scheduler, permission, elsewhere), f"{permission} allowed in {elsewhere}"
    assert discovery.check(elsewhere).state is State.FORBIDDEN


def test_cluster_role_reads_namespaces_and_nothing_else() -> None:
    manifests = _manifests("cluster-role.yaml")

    role = _kind(manifests, "ClusterRole")
    binding = _kind(manifests, "ClusterRoleBinding")
    assert role["rules"] == [
        {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["get", "list", "watch"]}
    ]
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": role["metadata"]["name"],
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": SCHEDULER_ACCOUNT, "namespace": SCHEDULER_NAMESPACE}
    ]


def test_rbac_watch_role_grants_exactly_what_the_rbac_watch_reads() -> None:
    manifests = _manifests("rbac-watch.yaml")
    role = _kind(manifests, "ClusterRole")
    assert role["rules"] == [RBAC_WATCH_RULE]
    assert _kind(manifests, "ClusterRoleBinding")["subjects"] == [
        {"kind": "ServiceAccount", "name": SCHEDULER_ACCOUNT, "namespace": SCHEDULER_NAMESPACE}
    ]


def test_team_template_grants_what_access_reviews_check_and_has_one_placeholder() -> None:
    raw = (DEPLOY / "team-namespace.yaml").read_text()
    assert PLACEHOLDER in raw
    manifests = _manifests("team-namespace.yaml", "team-a")
    assert "${" not in yaml.safe_dump_all(manifests)

    namespace = _kind(manifests, "Namespace")
    role = _kind(manifests, "Role")
    binding = _kind(manifests, "RoleBinding")
    assert namespace["metadata"] == {"name": "team-a", "labels": {"airflow-enabled": "true"}}
    # The same rules `airflow kubernetes-namespaces check` suggests, so either fixes a namespace.
    assert role["rules"] == role_rules()
    assert role["metadata"]["namespace"] == binding["metadata"]["namespace"] == "team-a"
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": SCHEDULER_ACCOUNT, "namespace": SCHEDULER_NAMESPACE}
    ]


def test_helm_values_switch_the_executor_on_with_known_options() -> None:
    values = yaml.safe_load((DEPLOY / "helm-values.yaml").read_text())

    assert values["executor"] == EXECUTOR
    assert values["scheduler"]["serviceAccount"]["name"] == SCHEDULER_ACCOUNT
    assert values["multiNamespaceMode"] is False
    assert set(values["config"]["kubernetes_namespace_discovery"]) <= set(OPTIONS)
    assert "multi_namespace_mode_namespace_list" not in values["config"]["kubernetes_executor"]
    assert all(isinstance(v, str) for v in values["config"]["kubernetes_namespace_discovery"].values())
