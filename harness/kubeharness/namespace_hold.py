"""Holding a namespace in Terminating, the way a slow kubelet or a finalizer does in production.

The namespace controller deletes a namespace's contents and then the namespace itself in well
under a second here, because no pod is bound to a node and unbound pods go at once. Tests that
must see the Terminating state in between (a namespace draining while its pods still run) put a
finalizer of their own on every pod and on one marker ConfigMap before deleting: the controller
then marks everything deleted but cannot finish until release() lifts the finalizers, exactly as
it waits for a kubelet's confirmation on a real cluster. RoleBindings need no hold: since
OrderedNamespaceDeletion the controller deletes them only once the pods are gone.
"""

from __future__ import annotations

import time
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

FINALIZER = "nsdiscovery.test/hold"
MARKER = "nsd-deletion-hold"
GONE_TIMEOUT = 90.0
"""The namespace controller waits 5 s before it acts (namespaceDeletionGracePeriod) and needs about
a second more here; after an API-server outage its informers may take up to 30 s (client-go's
reconnect backoff) to see the deletion at all. The rest is headroom for a loaded machine."""


def _finalizers_patch(finalizers: list[str]) -> list[dict[str, Any]]:
    # A JSON patch, because a strategic merge patch unions `finalizers` and could never remove one.
    return [{"op": "add", "path": "/metadata/finalizers", "value": finalizers}]


def hold(api_client: client.ApiClient, namespace: str) -> None:
    """Keep the namespace and its current pods from disappearing once it is deleted."""
    core = client.CoreV1Api(api_client)
    core.create_namespaced_config_map(
        namespace,
        client.V1ConfigMap(metadata=client.V1ObjectMeta(name=MARKER, finalizers=[FINALIZER])),
    )
    for pod in core.list_namespaced_pod(namespace).items:
        finalizers = [*(pod.metadata.finalizers or []), FINALIZER]
        core.patch_namespaced_pod(pod.metadata.name, namespace, _finalizers_patch(finalizers))


def release(api_client: client.ApiClient, namespace: str) -> None:
    """Lift the holds: each held object may then go, and the namespace controller finishes."""
    core, rbac = client.CoreV1Api(api_client), client.RbacAuthorizationV1Api(api_client)
    held: list[tuple[Any, Any]] = [
        (core.patch_namespaced_pod, pod) for pod in core.list_namespaced_pod(namespace).items
    ]
    held += [
        (core.patch_namespaced_config_map, cm) for cm in core.list_namespaced_config_map(namespace).items
    ]
    held += [
        (rbac.patch_namespaced_role_binding, rb) for rb in rbac.list_namespaced_role_binding(namespace).items
    ]
    for patch, item in held:
        finalizers = item.metadata.finalizers or []
        if FINALIZER not in finalizers:
            continue
        try:
            patch(item.metadata.name, namespace, _finalizers_patch([f for f in finalizers if f != FINALIZER]))
        except ApiException as exc:
            if exc.status != 404:
                raise


def wait_gone(core: client.CoreV1Api, namespace: str, timeout: float = GONE_TIMEOUT) -> None:
    """Return once the namespace controller has removed the namespace."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            current = core.read_namespace(namespace)
        except ApiException as exc:
            if exc.status == 404:
                return
            raise
        if current.metadata.deletion_timestamp is None:
            raise ValueError(f"namespace {namespace} is not being deleted; call delete_namespace first")
        if time.monotonic() > deadline:
            conditions = [(c.type, c.message) for c in current.status.conditions or []]
            raise TimeoutError(f"namespace {namespace} still there after {timeout:.0f} s: {conditions}")
        time.sleep(0.1)
