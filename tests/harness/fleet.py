"""Many labelled team namespaces at once, for load measurements (benchmarks, the HA load test)."""

from __future__ import annotations

from collections.abc import Sequence

from kubernetes import client

from kubeharness import Cluster, Identity
from tests.harness.executor_pods import POD_RULES


def team_namespaces(
    cluster: Cluster,
    count: int,
    prefix: str,
    identities: Sequence[Identity],
    *,
    label: str,
    role: str,
) -> list[str]:
    """Namespaces ``<prefix>-0000`` ... labelled ``<label>=true``, where each identity may manage
    pods (one Role ``role`` and its RoleBinding each): created directly, without waiting for each
    grant to be in force (the first reviews come after all of them are made)."""
    api_client = cluster.admin_api_client()
    try:
        admin = client.CoreV1Api(api_client)
        rbac = client.RbacAuthorizationV1Api(api_client)
        pods = client.V1Role(metadata=client.V1ObjectMeta(name=role), rules=list(POD_RULES))
        subjects = [
            client.RbacV1Subject(kind="ServiceAccount", name=i.name, namespace=i.namespace)
            for i in identities
        ]
        binding = client.V1RoleBinding(
            metadata=client.V1ObjectMeta(name=role),
            role_ref=client.V1RoleRef(api_group="rbac.authorization.k8s.io", kind="Role", name=role),
            subjects=subjects,
        )
        names = [f"{prefix}-{n:04d}" for n in range(count)]
        for name in names:
            admin.create_namespace(
                client.V1Namespace(metadata=client.V1ObjectMeta(name=name, labels={label: "true"}))
            )
            rbac.create_namespaced_role(name, pods)
            rbac.create_namespaced_role_binding(name, binding)
        return names
    finally:
        api_client.close()
