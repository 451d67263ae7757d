"""A real Kubernetes control plane for tests: kube-apiserver, etcd and kube-controller-manager
as child processes (or K3s in Docker), with ServiceAccount identities, RBAC grants that return
once enforced, and the kubelet's part played on demand.

The names below are the public API; the modules hold one job each (binaries, pki, processes,
cluster, controlplane, k3s, choose) plus the generic test tools (namespace_hold, lossy_link,
webhook_authorizer, controller_manager, waiting, pytest_plugin).
"""

from kubeharness.binaries import ENABLE_HINT, find_binaries
from kubeharness.choose import require_cluster, resolve
from kubeharness.cluster import (
    NAMESPACE_READ_RULES,
    RBAC_PROPAGATION_TIMEOUT,
    STARTUP_TIMEOUT,
    Cluster,
    Identity,
    NamespaceFactory,
    PodPhase,
)
from kubeharness.controlplane import SERVICE_ACCOUNT_ISSUER, ControlPlane
from kubeharness.k3s import K3sControlPlane, k3s_control_plane
from kubeharness.processes import die_with_parent, free_ports, stop_at_exit, terminate
from kubeharness.waiting import wait_until

__all__ = [
    "ENABLE_HINT",
    "NAMESPACE_READ_RULES",
    "RBAC_PROPAGATION_TIMEOUT",
    "SERVICE_ACCOUNT_ISSUER",
    "STARTUP_TIMEOUT",
    "Cluster",
    "ControlPlane",
    "Identity",
    "K3sControlPlane",
    "NamespaceFactory",
    "PodPhase",
    "die_with_parent",
    "find_binaries",
    "free_ports",
    "k3s_control_plane",
    "require_cluster",
    "resolve",
    "stop_at_exit",
    "terminate",
    "wait_until",
]
