"""deploy/'s RBAC, rendered for Helm releases, applied to a real API server and used by the
identities the official chart runs its components as.

The claim: with what ``python -m airflow_provider_nsdiscovery.deploy`` renders, the scheduler
launches pods at home and in a team namespace and discovers that namespace; the API server lists
the task pods there and reads a running one's log (served by a stand-in kubelet over HTTPS,
through the API server's own pods/log proxy); task pods may start pods where they run and nowhere
else; and two releases in one cluster, sharing a team namespace, create no object twice. Each
identity acts with its own ServiceAccount token.
"""

from __future__ import annotations

import contextlib
import datetime
import functools
import ssl
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from kubernetes import client, utils
from kubernetes.client.exceptions import ApiException

from airflow_provider_nsdiscovery.deploy import Manifest, Release, render
from airflow_provider_nsdiscovery.discovery.access import access_allowed
from airflow_provider_nsdiscovery.discovery.controller import NamespaceDiscovery
from airflow_provider_nsdiscovery.discovery.permissions import (
    LOG_READER_PERMISSIONS,
    NAMESPACE_DISCOVERY_PERMISSIONS,
    REQUIRED_PERMISSIONS,
    WORKER_PERMISSIONS,
    Permission,
)
from airflow_provider_nsdiscovery.discovery.status import State
from kubeharness import Cluster, ControlPlane, Identity, wait_until
from tests.harness.executor_pods import CONTAINER_NAME

LOG_LINE = "task log line from the stand-in kubelet"


@dataclass
class Deployed:
    release: Release
    team: str
    scheduler: Identity
    api_server: Identity
    worker: Identity
    """A task pod in the team namespace: the workers' ServiceAccount there."""


def _allowed(identity: Identity, permission: Permission, namespace: str | None) -> bool:
    return access_allowed(client.AuthorizationV1Api(identity.api_client), permission, namespace)


def _apply(admin: client.ApiClient, manifests: list[Manifest]) -> None:
    """Create every object; only the Namespace and the workers' ServiceAccount may exist already,
    as two releases of one fullname share them (the pod template names the account alike)."""
    for manifest in manifests:
        try:
            utils.create_from_dict(admin, manifest)
        except utils.FailToCreateError as err:
            conflict = all(isinstance(e, ApiException) and e.status == 409 for e in err.api_exceptions)
            if not (conflict and manifest["kind"] in ("Namespace", "ServiceAccount")):
                raise


def _release(label: str) -> Release:
    """A release named like the chart's users name them, unique per test: names are cluster-wide."""
    return Release(name=f"rel-{label}", namespace=f"home-{label}")


@pytest.fixture
def deployed(control_plane: Cluster) -> Iterator[Callable[[Release, str], Deployed]]:
    """Applies a release's rendered RBAC and mints the tokens of the chart's ServiceAccounts."""
    admin = control_plane.admin_api_client()
    rbac = client.RbacAuthorizationV1Api(admin)
    releases: list[Release] = []
    namespaces: set[str] = set()

    def deploy(release: Release, team: str) -> Deployed:
        releases.append(release)
        namespaces.update((release.namespace, team))
        control_plane.create_namespace(release.namespace)
        # The chart creates its components' ServiceAccounts; the harness does the same here.
        scheduler = control_plane.service_account_client(release.namespace, release.scheduler)
        api_server = control_plane.service_account_client(release.namespace, release.api_server)
        control_plane.service_account_client(release.namespace, release.worker)  # pods at home run as it
        _apply(admin, render("cluster", release) + render("release-namespace", release))
        _apply(admin, render("team", release, [team], label_selector="airflow-enabled=true"))
        worker = control_plane.service_account_client(team, release.worker)
        return Deployed(release, team, scheduler, api_server, worker)

    yield deploy
    for release in releases:
        for delete in (rbac.delete_cluster_role_binding, rbac.delete_cluster_role):
            with contextlib.suppress(ApiException):
                delete(release.object_name("namespace-discovery"))
    for namespace in namespaces:
        with contextlib.suppress(ApiException):
            control_plane.delete_namespace(namespace)
            control_plane.finish_namespace_deletion(namespace, wait=False)
    admin.close()


class _ContainerLogs(BaseHTTPRequestHandler):
    """The one kubelet endpoint the API server's pods/log proxy calls."""

    def do_GET(self) -> None:
        ok = self.path.startswith("/containerLogs/")
        body = (LOG_LINE + "\n" if ok else "not found\n").encode()
        self.send_response(200 if ok else 404)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        return


def _self_signed(directory: Path) -> ssl.SSLContext:
    """kube-apiserver started without --kubelet-certificate-authority does not verify kubelets."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "stand-in-kubelet")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .sign(key, hashes.SHA256())
    )
    (directory / "kubelet.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (directory / "kubelet.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(directory / "kubelet.crt", directory / "kubelet.key")
    return context


@pytest.fixture
def log_node(control_plane: Cluster, tmp_path: Path) -> Iterator[str]:
    """A Node whose kubelet endpoint serves container logs, so pods/log reads go all the way."""
    if not isinstance(control_plane, ControlPlane):
        pytest.skip("the stand-in kubelet serves logs to the process control plane; K3s has its own node")
    server = ThreadingHTTPServer(("127.0.0.1", 0), _ContainerLogs)
    server.socket = _self_signed(tmp_path).wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    name = f"log-node-{uuid.uuid4().hex[:8]}"
    node = {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name},
        "spec": {"unschedulable": True},
    }
    core = client.CoreV1Api(control_plane.admin_api_client())
    core.create_node(node)
    status = {
        "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": server.server_address[1]}},
    }
    core.patch_node_status(name, {"status": status})
    try:
        yield name
    finally:
        with contextlib.suppress(ApiException):
            core.delete_node(name)
        core.api_client.close()
        server.shutdown()
        thread.join(timeout=5)


def _pod(name: str, account: str, node: str | None = None) -> client.V1Pod:
    return client.V1Pod(
        metadata=client.V1ObjectMeta(name=name, labels={"kubernetes_executor": "True", "dag_id": "d"}),
        spec=client.V1PodSpec(
            service_account_name=account,
            node_name=node,
            restart_policy="Never",
            containers=[client.V1Container(name=CONTAINER_NAME, image="apache/airflow")],
        ),
    )


def _status(call: Callable[[], object]) -> int:
    try:
        call()
    except ApiException as err:
        return int(err.status)
    return 200


def test_rendered_rbac_lets_the_charts_identities_launch_discover_and_read_logs_in_a_team_namespace(
    deployed: Callable[[Release, str], Deployed],
    control_plane: Cluster,
    start_discovery: Callable[..., NamespaceDiscovery],
    ns_factory: Callable[..., str],
    log_node: str,
) -> None:
    label = uuid.uuid4().hex[:8]
    d = deployed(_release(label), f"team-{label}")
    home, team = d.release.namespace, d.team
    assert d.scheduler.username == f"system:serviceaccount:{home}:rel-{label}-airflow-scheduler"
    # RBAC bindings reach the authorizer through a watch: wait until the manifests are in force.
    wait_until(
        lambda: (
            all(_allowed(d.scheduler, p, None) for p in NAMESPACE_DISCOVERY_PERMISSIONS)
            and all(_allowed(d.scheduler, p, ns) for p in REQUIRED_PERMISSIONS for ns in (home, team))
            and all(_allowed(d.api_server, p, team) for p in LOG_READER_PERMISSIONS)
            and all(_allowed(d.worker, p, team) for p in WORKER_PERMISSIONS)
        ),
        "the rendered RBAC to take effect",
    )

    # The scheduler launches task pods, as the workers' account, at home and in the team namespace.
    scheduler_core = client.CoreV1Api(d.scheduler.api_client)
    scheduler_core.create_namespaced_pod(home, _pod("task-home", d.release.worker))
    scheduler_core.create_namespaced_pod(team, _pod("task-team", d.release.worker, node=log_node))
    control_plane.set_pod_phase(team, "task-team", "Running")

    # ... and discovers the team namespace, labelled by the rendered Namespace.
    discovery = start_discovery(d.scheduler, home_namespace=home, label_selector="airflow-enabled=true")
    status = discovery.status(team)
    assert status is not None
    assert status.state is State.PERMITTED, status.message

    # The API server finds the task's pod by its labels and reads its log, as get_task_log does.
    api_core = client.CoreV1Api(d.api_server.api_client)
    (pod,) = api_core.list_namespaced_pod(team, label_selector="kubernetes_executor=True").items
    log = api_core.read_namespaced_pod_log(
        pod.metadata.name, team, container=CONTAINER_NAME, _preload_content=False
    )
    assert log.data.decode() == LOG_LINE + "\n"

    # Nothing beyond: no pods for anyone cluster-wide or where nobody granted, workers stay in
    # their namespace, the API server reads logs only.
    elsewhere = ns_factory(labels={"airflow-enabled": "true"})
    for identity in (d.scheduler, d.api_server, d.worker):
        assert not _allowed(identity, Permission("create", "pods"), None)
        assert not _allowed(identity, Permission("create", "pods"), elsewhere)
        assert not _allowed(identity, Permission("get", "pods", "log"), elsewhere)
    assert not _allowed(d.worker, Permission("create", "pods"), home)
    assert not _allowed(d.api_server, Permission("create", "pods"), team)
    assert _status(lambda: api_core.list_namespaced_pod(elsewhere)) == 403
    assert discovery.check(elsewhere).state is State.FORBIDDEN
    assert all(loop.alive and loop.healthy for loop in discovery.health())


def test_two_releases_in_one_cluster_share_a_team_namespace_without_colliding(
    deployed: Callable[[Release, str], Deployed],
) -> None:
    label = uuid.uuid4().hex[:8]
    team = f"team-{label}"
    # Same release name in two namespaces: the chart's fullname alone would collide.
    first = deployed(Release(name="airflow", namespace=f"a-{label}"), team)
    second = deployed(Release(name="airflow", namespace=f"b-{label}"), team)

    assert first.release.object_name("task-pods") != second.release.object_name("task-pods")

    def granted(d: Deployed) -> bool:
        return (
            all(_allowed(d.scheduler, p, team) for p in REQUIRED_PERMISSIONS)
            and all(_allowed(d.api_server, p, team) for p in LOG_READER_PERMISSIONS)
            and _allowed(d.scheduler, Permission("list", "namespaces"), None)
        )

    for d in (first, second):
        wait_until(
            functools.partial(granted, d), f"release {d.release.namespace}/{d.release.name} to be granted"
        )
        # Each binds its own scheduler only: the other release's home stays closed to it.
        other = second if d is first else first
        assert not _allowed(d.scheduler, Permission("create", "pods"), other.release.namespace)
