"""The shapes RBAC takes on real clusters, each reviewed by the product's own AccessReviewer.

Operators rarely write a namespaced Role: they bind a shared ClusterRole, rely on aggregated
roles, use wildcards, or grant pods cluster-wide. The rules review returns each of these in a
different form, so each must be read as the API server's authorizer reads it. Rules limited by
resourceNames are the trap: they look like pod rights but never allow creating or listing pods.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence

import pytest
from kubernetes import client

from airflow_provider_nsdiscovery.discovery.access import AccessReviewer
from airflow_provider_nsdiscovery.discovery.permissions import REQUIRED_PERMISSIONS
from airflow_provider_nsdiscovery.discovery.status import AccessDecision
from kubeharness import RBAC_PROPAGATION_TIMEOUT, Cluster, Identity, NamespaceFactory, wait_until
from tests.harness.executor_pods import POD_RULES

API_GROUP = "rbac.authorization.k8s.io"
AGGREGATION_TIMEOUT = 30.0
"""The controller-manager aggregates within a second here; the rest is headroom for load."""


@pytest.fixture
def rbac(control_plane: Cluster) -> Iterator[client.RbacAuthorizationV1Api]:
    """Cluster-scoped objects outlive the test's namespaces, so whatever it creates is deleted."""
    with control_plane.admin_api_client() as api_client:
        api = client.RbacAuthorizationV1Api(api_client)
        before = {
            "roles": {r.metadata.name for r in api.list_cluster_role().items},
            "bindings": {b.metadata.name for b in api.list_cluster_role_binding().items},
        }
        yield api
        for binding in api.list_cluster_role_binding().items:
            if binding.metadata.name not in before["bindings"]:
                api.delete_cluster_role_binding(binding.metadata.name)
        for role in api.list_cluster_role().items:
            if role.metadata.name not in before["roles"]:
                api.delete_cluster_role(role.metadata.name)


def _name(kind: str) -> str:
    return f"nsd-{kind}-{uuid.uuid4().hex[:8]}"


def _cluster_role(
    rbac: client.RbacAuthorizationV1Api,
    rules: Sequence[client.V1PolicyRule] | None,
    *,
    labels: dict[str, str] | None = None,
    aggregate_from: dict[str, str] | None = None,
) -> str:
    name = _name("clusterrole")
    aggregation = (
        client.V1AggregationRule(cluster_role_selectors=[client.V1LabelSelector(match_labels=aggregate_from)])
        if aggregate_from
        else None
    )
    rbac.create_cluster_role(
        client.V1ClusterRole(
            metadata=client.V1ObjectMeta(name=name, labels=labels),
            rules=list(rules) if rules is not None else None,
            aggregation_rule=aggregation,
        )
    )
    return name


def _subject(identity: Identity) -> client.RbacV1Subject:
    return client.RbacV1Subject(kind="ServiceAccount", name=identity.name, namespace=identity.namespace)


def _bind_in(
    rbac: client.RbacAuthorizationV1Api, namespace: str, identity: Identity, cluster_role: str
) -> None:
    """A RoleBinding to a ClusterRole: the role's rules, in this one namespace only."""
    rbac.create_namespaced_role_binding(
        namespace,
        client.V1RoleBinding(
            metadata=client.V1ObjectMeta(name=_name("binding")),
            role_ref=client.V1RoleRef(api_group=API_GROUP, kind="ClusterRole", name=cluster_role),
            subjects=[_subject(identity)],
        ),
    )


def _reviewed_until_permitted(
    identity: Identity, namespace: str, timeout: float = RBAC_PROPAGATION_TIMEOUT
) -> None:
    """RBAC learns of new bindings through a watch, so the first review may predate them; the
    test fails if the form is never honoured within the timeout."""
    reviewer = AccessReviewer(identity.api_client, identity.username)
    decisions: list[AccessDecision] = []

    def permitted() -> bool:
        decisions.append(reviewer.review(namespace))
        return decisions[-1].allowed

    wait_until(permitted, f"{namespace} permitted; last missing: {decisions[-1:]}", timeout=timeout)


def test_clusterrole_bound_by_a_rolebinding_permits_the_namespace(
    rbac: client.RbacAuthorizationV1Api, ns_factory: NamespaceFactory, scheduler: Identity
) -> None:
    team = ns_factory()
    _bind_in(rbac, team, scheduler, _cluster_role(rbac, POD_RULES))

    _reviewed_until_permitted(scheduler, team)


def test_clusterrole_aggregated_by_the_controller_manager_permits_the_namespace(
    rbac: client.RbacAuthorizationV1Api, ns_factory: NamespaceFactory, scheduler: Identity
) -> None:
    """The aggregated role is created empty: only the clusterrole-aggregation controller gives it
    rules, so being permitted proves both the controller and that aggregated rules are read."""
    team = ns_factory()
    selector = {f"nsd-aggregate-{uuid.uuid4().hex[:8]}": "true"}
    aggregated = _cluster_role(rbac, None, aggregate_from=selector)
    _bind_in(rbac, team, scheduler, aggregated)
    assert not rbac.read_cluster_role(aggregated).rules

    _cluster_role(rbac, POD_RULES, labels=selector)

    _reviewed_until_permitted(scheduler, team, timeout=AGGREGATION_TIMEOUT)
    assert rbac.read_cluster_role(aggregated).rules


@pytest.mark.parametrize(
    "rule",
    [
        pytest.param(
            client.V1PolicyRule(api_groups=[""], resources=["pods", "pods/log"], verbs=["*"]), id="verbs"
        ),
        pytest.param(
            client.V1PolicyRule(
                api_groups=[""], resources=["*"], verbs=["create", "get", "list", "watch", "patch", "delete"]
            ),
            id="resources",
        ),
        pytest.param(client.V1PolicyRule(api_groups=["*"], resources=["*"], verbs=["*"]), id="everything"),
    ],
)
def test_wildcard_rule_permits_the_namespace(
    rule: client.V1PolicyRule, control_plane: Cluster, ns_factory: NamespaceFactory, scheduler: Identity
) -> None:
    team = ns_factory()
    control_plane.grant(scheduler, team, [rule])

    _reviewed_until_permitted(scheduler, team)


def test_pod_rule_restricted_by_resource_names_is_forbidden_naming_the_pod_verbs_it_lacks(
    rbac: client.RbacAuthorizationV1Api, ns_factory: NamespaceFactory, scheduler: Identity
) -> None:
    """A pod named in a rule may be read or deleted, but no name can be given to a create or a
    list, so such a rule must not count as permission to run tasks in the namespace."""
    team = ns_factory()
    role = _name("role")
    rbac.create_namespaced_role(
        team,
        client.V1Role(
            metadata=client.V1ObjectMeta(name=role),
            rules=[
                client.V1PolicyRule(
                    api_groups=[""],
                    resources=["pods"],
                    resource_names=["task-pod"],
                    verbs=["create", "get", "list", "watch", "patch", "delete"],
                ),
                client.V1PolicyRule(api_groups=[""], resources=["pods/log"], verbs=["get"]),
            ],
        ),
    )
    rbac.create_namespaced_role_binding(
        team,
        client.V1RoleBinding(
            metadata=client.V1ObjectMeta(name=role),
            role_ref=client.V1RoleRef(api_group=API_GROUP, kind="Role", name=role),
            subjects=[_subject(scheduler)],
        ),
    )
    authz = client.AuthorizationV1Api(scheduler.api_client)
    by_name = client.V1SelfSubjectAccessReview(
        spec=client.V1SelfSubjectAccessReviewSpec(
            resource_attributes=client.V1ResourceAttributes(
                namespace=team, verb="delete", resource="pods", name="task-pod"
            )
        )
    )
    # The rule must be in force first, so that the refusal below is about its form alone.
    wait_until(
        lambda: authz.create_self_subject_access_review(by_name).status.allowed,
        "deleting the named pod to be allowed",
        timeout=RBAC_PROPAGATION_TIMEOUT,
    )

    decision = AccessReviewer(scheduler.api_client, scheduler.username).review(team)

    assert decision.missing == tuple(str(p) for p in REQUIRED_PERMISSIONS if p.resource_path == "pods")


def test_clusterrolebinding_granting_pods_everywhere_permits_any_namespace(
    rbac: client.RbacAuthorizationV1Api,
    ns_factory: NamespaceFactory,
    scheduler: Identity,
) -> None:
    team = ns_factory()
    role = _cluster_role(rbac, POD_RULES)
    rbac.create_cluster_role_binding(
        client.V1ClusterRoleBinding(
            metadata=client.V1ObjectMeta(name=role),
            role_ref=client.V1RoleRef(api_group=API_GROUP, kind="ClusterRole", name=role),
            subjects=[_subject(scheduler)],
        )
    )

    _reviewed_until_permitted(scheduler, team)
    assert AccessReviewer(scheduler.api_client).may_watch_pods_everywhere()
