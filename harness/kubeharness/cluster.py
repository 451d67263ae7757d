"""What every test needs from a Kubernetes cluster, however it was started.

Code under test depends on what a real cluster does (RBAC decisions, TokenRequest tokens,
NamespaceLifecycle admission, namespace finalization, watch semantics), so tests run against a
real API server: the local control plane (controlplane.py) or K3s (k3s.py). Neither has a node,
so this class plays the kubelet's part on demand: it moves pods through their phases, and can
hold a namespace in Terminating, so each test decides when that happens. Identities are real
ServiceAccounts with TokenRequest tokens, and grants return only once RBAC enforces them.
"""

from __future__ import annotations

import abc
import base64
import json
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Literal, Protocol, TypeVar

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from kubeharness import namespace_hold
from kubeharness.waiting import wait_until

NAMESPACE_READ_RULES: list[client.V1PolicyRule] = [
    client.V1PolicyRule(api_groups=[""], resources=["namespaces"], verbs=["get", "list", "watch"]),
]

STARTUP_TIMEOUT = 60.0
"""Generous next to the ~3 s a start takes here, because CI machines stall under load."""

RBAC_PROPAGATION_TIMEOUT = 10.0
PodPhase = Literal["Running", "Succeeded", "Failed"]


class NamespaceFactory(Protocol):
    """The ns_factory fixture (kubeharness.pytest_plugin): a uniquely named namespace the test owns."""

    def __call__(self, labels: Mapping[str, str] | None = None) -> str: ...


def _is_status(exc: ApiException, *codes: int) -> bool:
    return exc.status in codes


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
        container: str | None = None,
    ) -> client.V1Pod:
        """Write the status a kubelet would, so watchers see a pod that really ran.

        The status is the named ``container``'s, by default the first one (the main container by
        convention). Explicit nulls drop its previous state: the strategic merge patch would
        otherwise keep `running` next to `terminated`.
        """
        if phase == "Running" and exit_code is not None:
            raise ValueError("a Running pod has no exit code")
        if phase == "Succeeded" and exit_code not in (None, 0):
            raise ValueError("a Succeeded pod's container exited 0")
        pod = self._core.read_namespaced_pod(name, namespace)
        wanted = container or pod.spec.containers[0].name
        spec = next((c for c in pod.spec.containers if c.name == wanted), None)
        if spec is None:
            names = [c.name for c in pod.spec.containers]
            raise ValueError(f"pod {namespace}/{name} has no container {wanted!r}: {names}")
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
                    "name": spec.name,
                    "image": spec.image,
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
        wait_until(
            settled,
            f"RBAC for {identity.username} {where} to become allowed={allowed}",
            timeout=RBAC_PROPAGATION_TIMEOUT,
            interval=0.05,
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
