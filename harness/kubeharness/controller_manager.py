"""kube-controller-manager for the process control plane, with only the controllers tests need.

Real clusters finish namespace deletion, mint ServiceAccount tokens, aggregate ClusterRoles and
collect garbage in kube-controller-manager; a harness that imitated them would test our
imitation instead. The controllers that would need nodes or a cloud (scheduling, pod GC,
endpoints, ...) stay off, so pods still stay Pending until a test moves them.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from kubernetes import client
from kubernetes.client.exceptions import ApiException

BINARY = "kube-controller-manager"

CONTROLLERS = (
    "namespace-controller",
    "serviceaccount-controller",
    "serviceaccount-token-controller",
    "clusterrole-aggregation-controller",
    "garbage-collector-controller",
)

MISSING_HINT = (
    "kube-controller-manager is needed next to kube-apiserver and etcd (setup-envtest ships "
    "only those two): copy one of the same Kubernetes version there, or unset KUBEBUILDER_ASSETS "
    "so harness/kubeharness/build-controlplane.sh builds all three"
)


def argv(binaries: Path, kubeconfig: Path, pki: Path) -> list[str]:
    """The command line; the admin kubeconfig keeps RBAC for the controllers out of the picture."""
    return [
        str(binaries / BINARY),
        f"--kubeconfig={kubeconfig}",
        f"--controllers={','.join(CONTROLLERS)}",
        "--leader-elect=false",
        # Nothing scrapes its metrics or health endpoints: readiness is judged by its work.
        "--secure-port=0",
        # The token controller signs legacy token Secrets with the API server's key pair.
        f"--service-account-private-key-file={pki / 'sa.key'}",
        f"--root-ca-file={pki / 'ca.crt'}",
        # Namespaces are deleted in most test teardowns; their deletion must not queue up. Each
        # deletion is some fifty requests (discovery, one deletecollection per resource), so the
        # client's default 20 requests per second let a suite's worth of deletions back up for
        # minutes (a held namespace was then not finalized within 30 s of its release).
        "--concurrent-namespace-syncs=20",
        "--kube-api-qps=500",
        "--kube-api-burst=1000",
    ]


def ready_probe(core: Callable[[], client.CoreV1Api]) -> Callable[[], bool]:
    """Ready once the ServiceAccount controller has made `default/default`: by then the
    informers are synced and the other controllers, started with it, are running too."""

    def probe() -> bool:
        try:
            core().read_namespaced_service_account("default", "default", _request_timeout=2)
        except ApiException as exc:
            if exc.status == 404:
                return False
            raise
        return True

    return probe
