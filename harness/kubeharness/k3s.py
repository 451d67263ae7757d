"""K3s in Docker, for machines that have Docker but neither Go nor prebuilt binaries.

testcontainers is optional (the `k3s` extra), so it is imported only when K3s is started.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

import pytest
from kubernetes import client
from kubernetes import config as kube_config

from kubeharness.cluster import STARTUP_TIMEOUT, Cluster
from kubeharness.processes import forget, stop_at_exit
from kubeharness.waiting import wait_until

K3S_IMAGE = "rancher/k3s:v1.35.4-k3s1"


def _docker_answers() -> bool:
    if shutil.which("docker") is None:
        return False
    try:
        return (
            subprocess.run(["docker", "info"], capture_output=True, timeout=30, check=False).returncode == 0
        )
    except subprocess.TimeoutExpired:
        return False


class K3sControlPlane(Cluster):
    """K3s exposed through the same attributes as ControlPlane.

    K3s authenticates its admin by client certificate, so an admin ServiceAccount token is
    minted with it and used from then on, keeping every helper token-based. Nodes are cordoned
    so pods stay Pending as on the process control plane, and a kubelet never overwrites the
    phases set_pod_phase writes.
    """

    def __init__(self) -> None:
        self._stop_container: Callable[[], object] | None = None

    def start(self) -> None:
        # Imported here because testcontainers is optional (the `k3s` extra).
        try:
            from testcontainers.community.k3s import K3SContainer  # noqa: PLC0415
        except ImportError:  # releases before the community split
            from testcontainers.k3s import K3SContainer  # noqa: PLC0415

        self.tmpdir = Path(tempfile.mkdtemp(prefix="nsd-k3s-"))
        stop_at_exit(self)
        try:
            container = K3SContainer(image=K3S_IMAGE)
            self._stop_container = container.stop  # before start(): a failed start may leave it
            container.start()
            admin_kubeconfig = self.tmpdir / "k3s-admin.yaml"
            admin_kubeconfig.write_text(container.config_yaml())
            configuration = client.Configuration()
            kube_config.load_kube_config(
                config_file=str(admin_kubeconfig), client_configuration=configuration
            )
            self.host = configuration.host
            self.ca_file = self.tmpdir / "ca.crt"
            shutil.copyfile(configuration.ssl_ca_cert, self.ca_file)
            with client.ApiClient(configuration) as cert_client:
                self.admin_token = self._mint_admin_token(cert_client)
                self._cordon_nodes(client.CoreV1Api(cert_client))
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        self._close_admin()
        if self._stop_container is not None:
            self._stop_container()
            self._stop_container = None
        forget(self)
        if hasattr(self, "tmpdir"):
            shutil.rmtree(self.tmpdir, ignore_errors=True)

    def restart_apiserver(self, *, downtime: float = 0.0) -> NoReturn:
        pytest.skip("restarting kube-apiserver needs the process control plane, not K3s")

    def restart_etcd(self, *, downtime: float = 0.0) -> NoReturn:
        pytest.skip("restarting etcd needs the process control plane, not K3s")

    @staticmethod
    def _mint_admin_token(cert_client: client.ApiClient) -> str:
        core, rbac = client.CoreV1Api(cert_client), client.RbacAuthorizationV1Api(cert_client)
        name = "nsd-admin"
        core.create_namespaced_service_account(
            "kube-system", client.V1ServiceAccount(metadata=client.V1ObjectMeta(name=name))
        )
        rbac.create_cluster_role_binding(
            client.V1ClusterRoleBinding(
                metadata=client.V1ObjectMeta(name=name),
                role_ref=client.V1RoleRef(
                    api_group="rbac.authorization.k8s.io", kind="ClusterRole", name="cluster-admin"
                ),
                subjects=[client.RbacV1Subject(kind="ServiceAccount", name=name, namespace="kube-system")],
            )
        )
        request = client.AuthenticationV1TokenRequest(
            spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=86400)
        )
        return str(core.create_namespaced_service_account_token(name, "kube-system", request).status.token)

    @staticmethod
    def _cordon_nodes(core: client.CoreV1Api) -> None:
        wait_until(
            lambda: core.list_node().items, "the K3s node to register", timeout=STARTUP_TIMEOUT, interval=1.0
        )
        for node in core.list_node().items:
            core.patch_node(node.metadata.name, {"spec": {"unschedulable": True}})


def k3s_control_plane() -> K3sControlPlane | None:
    """K3s, if testcontainers is installed and a Docker engine answers; None otherwise."""
    if importlib.util.find_spec("testcontainers") is None:
        return None
    return K3sControlPlane() if _docker_answers() else None
