"""A real Kubernetes control plane for integration tests, without a kubelet or scheduler.

The provider's behaviour depends on what a real cluster does (RBAC decisions, TokenRequest
tokens, NamespaceLifecycle admission, namespace finalization, watch semantics), so the
integration tests run against kube-apiserver, etcd and kube-controller-manager started as local
processes on 127.0.0.1. Where those binaries cannot be had but a Docker engine answers, K3s in a
container stands in. With no node, the harness plays the kubelet's part on demand: it moves pods
through their phases, and can hold a namespace in Terminating, so each test decides when that
happens.
"""

from __future__ import annotations

import abc
import atexit
import base64
import contextlib
import ctypes
import functools
import importlib.util
import ipaddress
import json
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any, Literal, NoReturn, Protocol, TypeVar

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from kubernetes import client
from kubernetes import config as kube_config
from kubernetes.client.exceptions import ApiException

from tests.harness import controller_manager, namespace_hold
from tests.harness.webhook_authorizer import WebhookAuthorizer

BUILD_SCRIPT = Path(__file__).with_name("build-controlplane.sh")
SERVICE_ACCOUNT_ISSUER = "https://kubernetes.default.svc"
CONTAINER_NAME = "base"
"""The container name Airflow's KubernetesExecutor gives the task container."""

ENABLE_HINT = (
    "no Kubernetes control plane for integration tests: install Go >= 1.25 "
    "(tests/harness/build-controlplane.sh then builds the control plane once) or set "
    "KUBEBUILDER_ASSETS to a directory holding kube-apiserver, kube-controller-manager and etcd"
)

POD_RULES: list[client.V1PolicyRule] = [
    client.V1PolicyRule(
        api_groups=[""],
        resources=["pods"],
        verbs=["create", "get", "list", "watch", "patch", "delete"],
    ),
    client.V1PolicyRule(api_groups=[""], resources=["pods/log"], verbs=["get"]),
]
"""What the KubernetesExecutor's scheduler needs in each namespace it launches pods in."""

NAMESPACE_READ_RULES: list[client.V1PolicyRule] = [
    client.V1PolicyRule(api_groups=[""], resources=["namespaces"], verbs=["get", "list", "watch"]),
]

POD_WATCH_EVERYWHERE_RULES: list[client.V1PolicyRule] = [
    client.V1PolicyRule(api_groups=[""], resources=["pods"], verbs=["list", "watch"]),
]
"""Cluster-wide rules that let the executor replace its per-namespace watches with one."""

STARTUP_TIMEOUT = 60.0
"""Generous next to the ~3 s a start takes here, because CI machines stall under load."""

RBAC_PROPAGATION_TIMEOUT = 10.0
PodPhase = Literal["Running", "Succeeded", "Failed"]


class NamespaceFactory(Protocol):
    """The ns_factory fixture: creates a uniquely named namespace that the test owns."""

    def __call__(self, labels: Mapping[str, str] | None = None) -> str: ...


def _poll(condition: Callable[[], bool], timeout: float, what: str, interval: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def _is_status(exc: ApiException, *codes: int) -> bool:
    return exc.status in codes


# --------------------------------------------------------------------------------------------
# Finding binaries


def find_binaries() -> Path | None:
    """Return a directory holding the control plane's binaries, building them if need be.

    KUBEBUILDER_ASSETS wins so developers can reuse binaries from setup-envtest; when it is set
    but incomplete that is a mistake worth an error rather than a silent fallback. Otherwise the
    build script is run: it answers at once from its cache, even on a machine without Go.
    """
    assets = os.environ.get("KUBEBUILDER_ASSETS")
    if assets:
        directory = Path(assets)
        wanted = ("kube-apiserver", "etcd", controller_manager.BINARY)
        missing = [b for b in wanted if not (directory / b).is_file()]
        if missing:
            hint = f": {controller_manager.MISSING_HINT}" if controller_manager.BINARY in missing else ""
            raise FileNotFoundError(f"KUBEBUILDER_ASSETS={assets} lacks {', '.join(missing)}{hint}")
        return directory
    result = subprocess.run(
        ["bash", str(BUILD_SCRIPT)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        if shutil.which("go") is None:
            return None
        raise RuntimeError(f"{BUILD_SCRIPT.name} failed with exit code {result.returncode}")
    return Path(result.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------------------------
# Cleanup when tests fail, are interrupted or pytest is killed

_LIVE: set[Cluster] = set()
_PR_SET_PDEATHSIG = 1
_LIBC = ctypes.CDLL(None, use_errno=True) if sys.platform == "linux" else None


def _die_with_parent() -> None:
    """Make the kernel SIGKILL the child when pytest dies, even by SIGKILL, so nothing leaks.

    Runs between fork and exec. The "parent" is the forking thread, so control planes must be
    started from a thread that outlives them (pytest's main thread does).
    """
    if _LIBC is not None:
        _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def _stop_all() -> None:
    for cluster in list(_LIVE):
        cluster.stop()


def _on_sigterm(previous: Callable[[int, FrameType | None], Any] | int | None) -> Callable[..., None]:
    def handler(signum: int, frame: FrameType | None) -> None:
        _stop_all()
        if callable(previous):
            previous(signum, frame)
        elif previous != signal.SIG_IGN:
            # Re-deliver with the default action so the exit status still says "SIGTERM".
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)

    return handler


@functools.cache
def _install_cleanup_hooks() -> None:
    """atexit covers normal and exceptional exits; SIGTERM (CI timeouts) skips atexit otherwise."""
    atexit.register(_stop_all)
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _on_sigterm(signal.getsignal(signal.SIGTERM)))


# --------------------------------------------------------------------------------------------
# Identities and the cluster-agnostic helpers


@dataclass(frozen=True)
class Identity:
    """A ServiceAccount as a client sees it: a real TokenRequest token and a kubeconfig."""

    namespace: str
    name: str
    token: str
    api_client: client.ApiClient
    kubeconfig_path: Path

    @property
    def username(self) -> str:
        return f"system:serviceaccount:{self.namespace}:{self.name}"


def _create_if_missing(create: Callable[[], object]) -> None:
    try:
        create()
    except ApiException as exc:
        if not _is_status(exc, 409):
            raise


def _create_or_replace(create: Callable[[], object], replace: Callable[[], object]) -> None:
    try:
        create()
    except ApiException as exc:
        if not _is_status(exc, 409):
            raise
        replace()


def _access_checks(rules: Sequence[client.V1PolicyRule]) -> list[tuple[str, str, str, str]]:
    """Every (group, resource, subresource, verb) a rule set grants, to verify it took effect."""
    checks: list[tuple[str, str, str, str]] = []
    for rule in rules:
        for group in rule.api_groups or [""]:
            for resource in rule.resources or []:
                base, _, sub = resource.partition("/")
                checks.extend((group, base, sub, verb) for verb in rule.verbs)
    return checks


_C = TypeVar("_C", bound="Cluster")


class Cluster(abc.ABC):
    """What every integration test needs from a cluster, whichever way it was started.

    Subclasses set host, ca_file, admin_token and tmpdir in start(); all helpers go through the
    API with those, so they behave the same on the process control plane and on K3s.
    """

    host: str
    ca_file: Path
    admin_token: str
    tmpdir: Path
    _admin: client.ApiClient | None = None

    @abc.abstractmethod
    def start(self) -> None: ...

    @abc.abstractmethod
    def stop(self) -> None: ...

    @abc.abstractmethod
    def restart_apiserver(self, *, downtime: float = 0.0) -> None:
        """Kill kube-apiserver and start it again on the same port, for fault tests."""

    @abc.abstractmethod
    def restart_etcd(self, *, downtime: float = 0.0) -> None:
        """Kill etcd and start it again on the same data, for fault tests."""

    def __enter__(self: _C) -> _C:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _configuration(self, token: str) -> client.Configuration:
        configuration = client.Configuration()
        configuration.host = self.host
        configuration.ssl_ca_cert = str(self.ca_file)
        configuration.verify_ssl = True
        # Client 36 reads "BearerToken" (its prefix too); earlier releases read "authorization".
        configuration.api_key = {"BearerToken": token, "authorization": token}
        configuration.api_key_prefix = {"BearerToken": "Bearer", "authorization": "Bearer"}
        return configuration

    def admin_api_client(self) -> client.ApiClient:
        """A fresh client in system:masters; TLS is verified against the per-run CA."""
        return client.ApiClient(self._configuration(self.admin_token))

    def _shared_admin(self) -> client.ApiClient:
        """One pooled client for the helpers, closed by stop(), so helpers don't leak sockets."""
        if self._admin is None:
            self._admin = self.admin_api_client()
        return self._admin

    @property
    def _core(self) -> client.CoreV1Api:
        return client.CoreV1Api(self._shared_admin())

    @property
    def _rbac(self) -> client.RbacAuthorizationV1Api:
        return client.RbacAuthorizationV1Api(self._shared_admin())

    def _close_admin(self) -> None:
        if self._admin is not None:
            self._admin.close()
            self._admin = None

    # Namespaces -------------------------------------------------------------------------

    def create_namespace(self, name: str, labels: Mapping[str, str] | None = None) -> client.V1Namespace:
        body = client.V1Namespace(metadata=client.V1ObjectMeta(name=name, labels=dict(labels or {})))
        return self._core.create_namespace(body)

    def label_namespace(self, name: str, labels: Mapping[str, str | None]) -> client.V1Namespace:
        """A None value removes the label as `kubectl label k-` does (null deletes in any patch type)."""
        return self._core.patch_namespace(name, {"metadata": {"labels": dict(labels)}})

    def delete_namespace(self, name: str, *, hold: bool = False) -> None:
        """The namespace controller then finalizes it; with `hold` it stays Terminating, and its
        pods stay too, until finish_namespace_deletion (see namespace_hold for why)."""
        if hold:
            namespace_hold.hold(self._shared_admin(), name)
        self._core.delete_namespace(name)

    def finish_namespace_deletion(self, name: str, *, wait: bool = True) -> None:
        """Release any hold and, with `wait`, return once the namespace controller is done."""
        namespace_hold.release(self._shared_admin(), name)
        if wait:
            namespace_hold.wait_gone(self._core, name)

    # Pods -------------------------------------------------------------------------------

    def set_pod_phase(
        self,
        namespace: str,
        name: str,
        phase: PodPhase,
        *,
        exit_code: int | None = None,
    ) -> client.V1Pod:
        """Write the status a kubelet would, so watchers see a pod that really ran.

        Explicit nulls drop the container's previous state: the strategic merge patch would
        otherwise keep `running` next to `terminated`.
        """
        if phase == "Running" and exit_code is not None:
            raise ValueError("a Running pod has no exit code")
        if phase == "Succeeded" and exit_code not in (None, 0):
            raise ValueError("a Succeeded pod's container exited 0")
        pod = self._core.read_namespaced_pod(name, namespace)
        container = next((c for c in pod.spec.containers if c.name == CONTAINER_NAME), None)
        if container is None:
            names = [c.name for c in pod.spec.containers]
            raise ValueError(f"pod {namespace}/{name} has no container {CONTAINER_NAME!r}: {names}")
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        started = pod.status.start_time.strftime("%Y-%m-%dT%H:%M:%SZ") if pod.status.start_time else now
        container_id = f"containerd://{uuid.uuid5(uuid.NAMESPACE_URL, f'{namespace}/{name}').hex}"
        state: dict[str, object]
        if phase == "Running":
            state = {"waiting": None, "running": {"startedAt": started}, "terminated": None}
        else:
            code = exit_code if exit_code is not None else (0 if phase == "Succeeded" else 1)
            state = {
                "waiting": None,
                "running": None,
                "terminated": {
                    "exitCode": code,
                    "reason": "Completed" if code == 0 else "Error",
                    "startedAt": started,
                    "finishedAt": now,
                    "containerID": container_id,
                },
            }
        running = phase == "Running"
        status = {
            "phase": phase,
            "startTime": started,
            "conditions": [
                {"type": "Ready", "status": str(running), "lastTransitionTime": now},
                {"type": "ContainersReady", "status": str(running), "lastTransitionTime": now},
            ],
            "containerStatuses": [
                {
                    "name": CONTAINER_NAME,
                    "image": container.image,
                    "imageID": "",
                    "containerID": container_id,
                    "ready": running,
                    "started": running,
                    "restartCount": 0,
                    "state": state,
                }
            ],
        }
        return self._core.patch_namespaced_pod_status(name, namespace, {"status": status})

    # ServiceAccounts and RBAC -----------------------------------------------------------

    def service_account_client(
        self,
        namespace: str,
        name: str,
        *,
        cluster_rules: Sequence[client.V1PolicyRule] = (),
        namespace_rules: Mapping[str, Sequence[client.V1PolicyRule]] | None = None,
    ) -> Identity:
        """Authenticate as a ServiceAccount exactly as a pod or a kubeconfig user would.

        Every namespace in namespace_rules must exist: RBAC objects cannot live in a namespace
        that does not. The call returns only once the grants are in force, because the API
        server's RBAC authorizer learns about new bindings through a watch.
        """
        core = self._core
        _create_if_missing(lambda: self.create_namespace(namespace))
        _create_if_missing(
            lambda: core.create_namespaced_service_account(
                namespace, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name=name))
            )
        )
        # Empty audiences: the token gets the API server's own, whatever the cluster configured.
        request = client.AuthenticationV1TokenRequest(
            spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=3600)
        )
        token = core.create_namespaced_service_account_token(name, namespace, request).status.token
        identity = Identity(
            namespace=namespace,
            name=name,
            token=token,
            api_client=client.ApiClient(self._configuration(token)),
            kubeconfig_path=self._write_kubeconfig(f"{namespace}.{name}", token),
        )
        if cluster_rules:
            self.grant_cluster_wide(identity, cluster_rules)
        for target, rules in (namespace_rules or {}).items():
            self.grant(identity, target, rules)
        return identity

    def grant_cluster_wide(self, identity: Identity, rules: Sequence[client.V1PolicyRule]) -> None:
        """Bind rules to the identity in every namespace (one ClusterRole per identity, replaced
        by the next call); returns once they are in force."""
        rbac = self._rbac
        role_name = f"nsd-{identity.namespace}-{identity.name}"
        role = client.V1ClusterRole(metadata=client.V1ObjectMeta(name=role_name), rules=list(rules))
        binding = client.V1ClusterRoleBinding(
            metadata=client.V1ObjectMeta(name=role_name),
            role_ref=client.V1RoleRef(
                api_group="rbac.authorization.k8s.io", kind="ClusterRole", name=role_name
            ),
            subjects=[self._subject(identity)],
        )
        _create_or_replace(
            lambda: rbac.create_cluster_role(role), lambda: rbac.replace_cluster_role(role_name, role)
        )
        _create_or_replace(
            lambda: rbac.create_cluster_role_binding(binding),
            lambda: rbac.replace_cluster_role_binding(role_name, binding),
        )
        self._wait_for_access(identity, "", rules, allowed=True)

    def grant(self, identity: Identity, namespace: str, rules: Sequence[client.V1PolicyRule]) -> str:
        """Bind rules to the identity in one namespace; returns once they are in force.

        One Role per identity and namespace, so granting again replaces the rules: that is how
        a test narrows a grant (say, drops `delete`) and sees the effect.
        """
        rbac = self._rbac
        name = self._binding_name(identity)
        role = client.V1Role(metadata=client.V1ObjectMeta(name=name), rules=list(rules))
        binding = client.V1RoleBinding(
            metadata=client.V1ObjectMeta(name=name),
            role_ref=client.V1RoleRef(api_group="rbac.authorization.k8s.io", kind="Role", name=name),
            subjects=[self._subject(identity)],
        )
        _create_or_replace(
            lambda: rbac.create_namespaced_role(namespace, role),
            lambda: rbac.replace_namespaced_role(name, namespace, role),
        )
        _create_or_replace(
            lambda: rbac.create_namespaced_role_binding(namespace, binding),
            lambda: rbac.replace_namespaced_role_binding(name, namespace, binding),
        )
        self._wait_for_access(identity, namespace, rules, allowed=True)
        return name

    def revoke(self, identity: Identity, namespace: str) -> None:
        """Delete what grant() bound; returns once the authorizer has stopped honouring it."""
        rbac = self._rbac
        name = self._binding_name(identity)
        rules = rbac.read_namespaced_role(name, namespace).rules or []
        rbac.delete_namespaced_role_binding(name, namespace)
        self._wait_for_access(identity, namespace, rules, allowed=False)

    @staticmethod
    def _binding_name(identity: Identity) -> str:
        return f"nsd-{identity.namespace}-{identity.name}"

    @staticmethod
    def _subject(identity: Identity) -> client.RbacV1Subject:
        return client.RbacV1Subject(kind="ServiceAccount", name=identity.name, namespace=identity.namespace)

    def _wait_for_access(
        self,
        identity: Identity,
        namespace: str,
        rules: Sequence[client.V1PolicyRule],
        *,
        allowed: bool,
    ) -> None:
        """Ask as the identity itself (SelfSubjectAccessReview) until RBAC reflects the change.

        A grant is in force when every check passes. A revocation is in force when any check
        fails: the authorizer drops a deleted binding as a whole, while some checks may stay
        allowed through other bindings.
        """
        authz = client.AuthorizationV1Api(identity.api_client)
        checks = _access_checks(rules)

        def permitted(group: str, resource: str, subresource: str, verb: str) -> bool:
            review = client.V1SelfSubjectAccessReview(
                spec=client.V1SelfSubjectAccessReviewSpec(
                    resource_attributes=client.V1ResourceAttributes(
                        namespace=namespace or None,
                        group=group,
                        resource=resource,
                        subresource=subresource or None,
                        verb=verb,
                    )
                )
            )
            return bool(authz.create_self_subject_access_review(review).status.allowed)

        def settled() -> bool:
            results = [permitted(*check) for check in checks]
            return all(results) if allowed else not all(results)

        where = f"in namespace {namespace}" if namespace else "cluster-wide"
        _poll(
            settled,
            RBAC_PROPAGATION_TIMEOUT,
            f"RBAC for {identity.username} {where} to become allowed={allowed}",
        )

    def _write_kubeconfig(self, stem: str, token: str) -> Path:
        """A self-contained kubeconfig (CA inlined) so it works from any working directory."""
        directory = self.tmpdir / "kubeconfigs"
        directory.mkdir(exist_ok=True)
        path = directory / f"{stem}.yaml"
        ca_data = base64.b64encode(self.ca_file.read_bytes()).decode()
        kubeconfig = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {"name": "nsd", "cluster": {"server": self.host, "certificate-authority-data": ca_data}}
            ],
            "users": [{"name": stem, "user": {"token": token}}],
            "contexts": [{"name": stem, "context": {"cluster": "nsd", "user": stem}}],
            "current-context": stem,
        }
        path.write_text(json.dumps(kubeconfig, indent=2))  # JSON is YAML to every kubeconfig reader
        path.chmod(0o600)
        return path


# --------------------------------------------------------------------------------------------
# The process control plane


def _free_ports(count: int) -> list[int]:
    """Ports the kernel picked; all are held open together so they cannot coincide."""
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]


def _pem_cert(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _pem_key(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _write_pki(directory: Path) -> None:
    """A throwaway CA and serving cert per run, so no key material is ever checked in.

    ECDSA keeps generation instant; the extensions satisfy strict X.509 verification
    (Python 3.13's default) as well as Go's.
    """
    now = datetime.now(UTC)
    not_before, not_after = now - timedelta(minutes=5), now + timedelta(days=7)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "nsdiscovery-test-ca")])
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca_cert = (
        x509.CertificateBuilder()
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ca_ski, critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    serving_key = ec.generate_private_key(ec.SECP256R1())
    serving_cert = (
        x509.CertificateBuilder()
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kube-apiserver")]))
        .issuer_name(ca_name)
        .public_key(serving_key.public_key())
        .serial_number(x509.random_serial_number())
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    sa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    (directory / "ca.crt").write_bytes(_pem_cert(ca_cert))
    (directory / "apiserver.crt").write_bytes(_pem_cert(serving_cert))
    (directory / "apiserver.key").write_bytes(_pem_key(serving_key))
    (directory / "sa.key").write_bytes(_pem_key(sa_key))
    (directory / "sa.pub").write_bytes(
        sa_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )


_LOOPBACK = urllib.request.build_opener(urllib.request.ProxyHandler({}))
"""Readiness probes must reach 127.0.0.1 directly even when http_proxy is set."""

_TMP_PREFIX = "nsd-controlplane-"
_OWNER_FILE = "owner.pid"


def _sweep_orphaned_tmpdirs() -> None:
    """Remove what a SIGKILLed test run left: its processes died with it (PDEATHSIG), but
    nothing could delete its directory. A directory whose owner is alive is left alone."""
    for directory in Path(tempfile.gettempdir()).glob(f"{_TMP_PREFIX}*"):
        try:
            os.kill(int((directory / _OWNER_FILE).read_text()), 0)
        except ProcessLookupError:
            shutil.rmtree(directory, ignore_errors=True)
        except (OSError, ValueError):
            continue  # not ours to judge: unreadable, foreign, or another user's process


def _tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


def _terminate(process: subprocess.Popen[bytes], grace: float) -> None:
    if process.poll() is not None:
        return
    if grace > 0:
        process.terminate()
        try:
            process.wait(grace)
            return
        except subprocess.TimeoutExpired:
            pass
    process.kill()
    process.wait()


class ControlPlane(Cluster):
    """etcd, kube-apiserver and kube-controller-manager as child processes of the test run.

    There is no kubelet or scheduler: pods stay Pending until a test asks the harness to act.
    The ServiceAccount admission plugin stays off, so a pod created right after its namespace
    does not race the controller that makes the `default` ServiceAccount.
    """

    def __init__(self, binaries: Path, *, webhook: WebhookAuthorizer | None = None) -> None:
        """With `webhook`, kube-apiserver authorizes by RBAC, then by that webhook."""
        self.binaries = binaries
        self.webhook = webhook
        self._webhook_flags: list[str] = []
        self._etcd: subprocess.Popen[bytes] | None = None
        self._apiserver: subprocess.Popen[bytes] | None = None
        self._controller_manager: subprocess.Popen[bytes] | None = None

    @property
    def etcd_url(self) -> str:
        """etcd's client URL, for tests that act on storage directly (e.g. compaction)."""
        return f"http://127.0.0.1:{self._etcd_port}"

    @property
    def etcd_pid(self) -> int:
        if self._etcd is None:
            raise RuntimeError("etcd is not running")
        return self._etcd.pid

    @property
    def apiserver_pid(self) -> int:
        if self._apiserver is None:
            raise RuntimeError("kube-apiserver is not running")
        return self._apiserver.pid

    @property
    def controller_manager_pid(self) -> int:
        return self._require(self._controller_manager).pid

    def start(self) -> None:
        _install_cleanup_hooks()
        _sweep_orphaned_tmpdirs()
        self.tmpdir = Path(tempfile.mkdtemp(prefix=_TMP_PREFIX))
        (self.tmpdir / _OWNER_FILE).write_text(str(os.getpid()))
        _LIVE.add(self)
        try:
            self._etcd_port, self._etcd_peer_port, self._apiserver_port = _free_ports(3)
            self.host = f"https://127.0.0.1:{self._apiserver_port}"
            self.ca_file = self.tmpdir / "ca.crt"
            self.admin_token = secrets.token_urlsafe(32)
            _write_pki(self.tmpdir)
            if self.webhook is not None:
                self._webhook_flags = self.webhook.start(self.tmpdir)
            # Static token file format: token,user,uid,"group1,group2".
            (self.tmpdir / "tokens.csv").write_text(
                f'{self.admin_token},nsd-admin,nsd-admin,"system:masters"\n'
            )
            self._start_etcd()
            self._start_apiserver()
            self._start_controller_manager()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Idempotent, and safe on a half-started control plane."""
        self._close_admin()
        if self._controller_manager is not None:
            _terminate(self._controller_manager, grace=5.0)
            self._controller_manager = None
        if self._apiserver is not None:
            _terminate(self._apiserver, grace=5.0)
            self._apiserver = None
        if self._etcd is not None:
            _terminate(self._etcd, grace=5.0)
            self._etcd = None
        if self.webhook is not None:
            self.webhook.stop()
        _LIVE.discard(self)
        if hasattr(self, "tmpdir"):
            shutil.rmtree(self.tmpdir, ignore_errors=True)

    def restart_apiserver(self, *, downtime: float = 0.0) -> None:
        """SIGKILL, like a crash: clients see connections drop mid-watch, not a clean close."""
        _terminate(self._require(self._apiserver), grace=0)
        self._apiserver = None
        time.sleep(downtime)
        self._start_apiserver()

    def restart_etcd(self, *, downtime: float = 0.0) -> None:
        """SIGKILL etcd and bring it back on the same data; returns once the API is ready again."""
        _terminate(self._require(self._etcd), grace=0)
        self._etcd = None
        time.sleep(downtime)
        self._start_etcd()
        self._wait_ready(self._require(self._apiserver), "kube-apiserver", self._readyz_probe())

    @staticmethod
    def _require(process: subprocess.Popen[bytes] | None) -> subprocess.Popen[bytes]:
        if process is None:
            raise RuntimeError("control plane is not started")
        return process

    def _spawn(self, name: str, argv: list[str]) -> subprocess.Popen[bytes]:
        # PDEATHSIG fires when the forking *thread* exits, so a restart from a helper thread
        # must not set it or the new process would die with that thread.
        from_main = threading.current_thread() is threading.main_thread()
        with (self.tmpdir / f"{name}.log").open("ab") as log:
            return subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                # Own session: a Ctrl-C meant for pytest must not kill etcd before the
                # fixtures' teardown has run.
                start_new_session=True,
                preexec_fn=_die_with_parent if from_main else None,  # noqa: PLW1509 - only prctl(2)
            )

    def _start_etcd(self) -> None:
        client_url = f"http://127.0.0.1:{self._etcd_port}"
        peer_url = f"http://127.0.0.1:{self._etcd_peer_port}"
        self._etcd = self._spawn(
            "etcd",
            [
                str(self.binaries / "etcd"),
                "--name=default",
                f"--data-dir={self.tmpdir / 'etcd-data'}",
                f"--listen-client-urls={client_url}",
                f"--advertise-client-urls={client_url}",
                f"--listen-peer-urls={peer_url}",
                f"--initial-advertise-peer-urls={peer_url}",
                f"--initial-cluster=default={peer_url}",
                "--unsafe-no-fsync",
            ],
        )

        def probe() -> bool:
            with _LOOPBACK.open(f"{client_url}/health", timeout=2) as response:
                return b'"health":"true"' in response.read()

        self._wait_ready(self._etcd, "etcd", probe)

    def _start_apiserver(self) -> None:
        tmp = self.tmpdir
        self._apiserver = self._spawn(
            "kube-apiserver",
            [
                str(self.binaries / "kube-apiserver"),
                f"--etcd-servers=http://127.0.0.1:{self._etcd_port}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--secure-port={self._apiserver_port}",
                f"--tls-cert-file={tmp / 'apiserver.crt'}",
                f"--tls-private-key-file={tmp / 'apiserver.key'}",
                "--authorization-mode=RBAC,Webhook" if self.webhook else "--authorization-mode=RBAC",
                *self._webhook_flags,
                f"--token-auth-file={tmp / 'tokens.csv'}",
                f"--service-account-key-file={tmp / 'sa.pub'}",
                f"--service-account-signing-key-file={tmp / 'sa.key'}",
                f"--service-account-issuer={SERVICE_ACCOUNT_ISSUER}",
                f"--api-audiences={SERVICE_ACCOUNT_ISSUER}",
                "--service-cluster-ip-range=10.0.0.0/24",
                "--disable-admission-plugins=ServiceAccount",
                # The lease reconciler would try to publish 127.0.0.1 as the `kubernetes`
                # Service's endpoint, which validation rejects as loopback, every 10 s.
                "--endpoint-reconciler-type=none",
            ],
        )
        self._wait_ready(self._apiserver, "kube-apiserver", self._readyz_probe())

    def restart_controller_manager(self) -> None:
        """A fresh kube-controller-manager: after API-server outages its informers reconnect with
        a backoff of up to 30 s and its namespace queue holds long per-item backoffs, which would
        delay the next test's namespace deletions by as much."""
        if self._controller_manager is not None:
            _terminate(self._controller_manager, grace=5.0)
        self._start_controller_manager()

    def _start_controller_manager(self) -> None:
        kubeconfig = self._write_kubeconfig("kube-controller-manager", self.admin_token)
        argv = controller_manager.argv(self.binaries, kubeconfig, self.tmpdir)
        self._controller_manager = self._spawn(controller_manager.BINARY, argv)
        probe = controller_manager.ready_probe(lambda: self._core)
        self._wait_ready(self._controller_manager, controller_manager.BINARY, probe)

    def _readyz_probe(self) -> Callable[[], bool]:
        opener = urllib.request.build_opener(
            urllib.request.ProxyHandler({}),
            urllib.request.HTTPSHandler(context=ssl.create_default_context(cafile=str(self.ca_file))),
        )
        request = urllib.request.Request(
            f"{self.host}/readyz", headers={"Authorization": f"Bearer {self.admin_token}"}
        )

        def probe() -> bool:
            with opener.open(request, timeout=2) as response:
                return bool(response.status == 200)

        return probe

    def _wait_ready(self, process: subprocess.Popen[bytes], name: str, probe: Callable[[], bool]) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while True:
            if process.poll() is not None:
                self._fail(f"{name} exited with code {process.returncode} during startup")
            with contextlib.suppress(OSError):  # refused, reset, or HTTP 500 while not ready
                if probe():
                    return
            if time.monotonic() > deadline:
                self._fail(f"{name} not ready after {STARTUP_TIMEOUT:.0f} s")
            time.sleep(0.1)

    def _fail(self, message: str) -> NoReturn:
        logs = "\n".join(
            f"--- last lines of {name}.log ---\n{_tail(self.tmpdir / f'{name}.log')}"
            for name in ("etcd", "kube-apiserver", controller_manager.BINARY)
        )
        raise RuntimeError(f"{message}\n{logs}")


# --------------------------------------------------------------------------------------------
# K3s in Docker, for machines that have Docker but neither Go nor prebuilt binaries

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

        _install_cleanup_hooks()
        self.tmpdir = Path(tempfile.mkdtemp(prefix="nsd-k3s-"))
        _LIVE.add(self)
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
        _LIVE.discard(self)
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
        _poll(lambda: bool(core.list_node().items), STARTUP_TIMEOUT, "the K3s node to register", interval=1.0)
        for node in core.list_node().items:
            core.patch_node(node.metadata.name, {"spec": {"unschedulable": True}})


def k3s_control_plane() -> K3sControlPlane | None:
    """K3s, if testcontainers is installed and a Docker engine answers; None otherwise."""
    if importlib.util.find_spec("testcontainers") is None:
        return None
    return K3sControlPlane() if _docker_answers() else None


# --------------------------------------------------------------------------------------------
# Choosing


def resolve() -> Cluster | None:
    """The best available cluster, not yet started: local binaries, then K3s."""
    binaries = find_binaries()
    if binaries is not None:
        return ControlPlane(binaries)
    return k3s_control_plane()


def require_cluster() -> Cluster:
    """resolve(), or skip with how to enable integration tests; in CI a skip would hide the
    fact that nothing was tested, so it fails instead."""
    cluster = resolve()
    if cluster is not None:
        return cluster
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true but {ENABLE_HINT}", pytrace=False)
    pytest.skip(ENABLE_HINT)
