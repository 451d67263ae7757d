"""The harness itself must behave like a real cluster, or every integration test proves nothing."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from kubernetes import client
from kubernetes import config as kube_config
from kubernetes.client.exceptions import ApiException

from kubeharness import (
    SERVICE_ACCOUNT_ISSUER,
    Cluster,
    ControlPlane,
    NamespaceFactory,
    controlplane,
    find_binaries,
    wait_until,
)
from kubeharness.processes import free_ports

POD_RULES: list[client.V1PolicyRule] = [
    client.V1PolicyRule(api_groups=[""], resources=["pods"], verbs=["create", "get", "list", "delete"]),
    client.V1PolicyRule(api_groups=[""], resources=["pods/log"], verbs=["get"]),
]


def _pod(name: str) -> client.V1Pod:
    return client.V1Pod(
        metadata=client.V1ObjectMeta(name=name),
        spec=client.V1PodSpec(
            restart_policy="Never",
            containers=[client.V1Container(name="base", image="registry.invalid/nothing:1")],
        ),
    )


def _status_of(call: Callable[[], object]) -> int:
    with pytest.raises(ApiException) as caught:
        call()
    return int(caught.value.status)


def _sa_name() -> str:
    return f"sa-{uuid.uuid4().hex[:8]}"


def test_apiserver_reports_the_pinned_version(control_plane: Cluster) -> None:
    with control_plane.admin_api_client() as api_client:
        version = client.VersionApi(api_client).get_code()
    assert version.git_version.startswith("v1.35.4")


def test_rbac_denies_until_granted_and_only_where_granted(
    control_plane: Cluster, ns_factory: NamespaceFactory
) -> None:
    home, granted, other = ns_factory(), ns_factory(), ns_factory()
    identity = control_plane.service_account_client(home, _sa_name())
    pods = client.CoreV1Api(identity.api_client)

    assert _status_of(lambda: pods.list_namespaced_pod(granted)) == 403

    binding = control_plane.grant(identity, granted, POD_RULES)

    assert pods.list_namespaced_pod(granted).items == []
    assert _status_of(lambda: pods.list_namespaced_pod(other)) == 403

    control_plane.revoke(identity, granted)

    assert _status_of(lambda: pods.list_namespaced_pod(granted)) == 403
    assert binding == f"nsd-{home}-{identity.name}"


def test_service_account_token_is_a_real_token_request_token(
    control_plane: Cluster, ns_factory: NamespaceFactory
) -> None:
    namespace = ns_factory()
    identity = control_plane.service_account_client(namespace, _sa_name())

    review = client.AuthenticationV1Api(identity.api_client).create_self_subject_review(
        client.V1SelfSubjectReview()
    )
    payload = identity.token.split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))

    assert review.status.user_info.username == f"system:serviceaccount:{namespace}:{identity.name}"
    assert identity.username == review.status.user_info.username
    assert claims["exp"] - claims["iat"] == 3600
    if isinstance(control_plane, ControlPlane):
        assert claims["iss"] == SERVICE_ACCOUNT_ISSUER
        assert claims["aud"] == [SERVICE_ACCOUNT_ISSUER]


def test_kubeconfig_authenticates_as_the_service_account(
    control_plane: Cluster, ns_factory: NamespaceFactory
) -> None:
    namespace = ns_factory()
    identity = control_plane.service_account_client(
        namespace, _sa_name(), namespace_rules={namespace: POD_RULES}
    )
    configuration = client.Configuration()
    kube_config.load_kube_config(
        config_file=str(identity.kubeconfig_path), client_configuration=configuration
    )

    with client.ApiClient(configuration) as api_client:
        review = client.AuthenticationV1Api(api_client).create_self_subject_review(
            client.V1SelfSubjectReview()
        )
        pods = client.CoreV1Api(api_client).list_namespaced_pod(namespace)

    assert review.status.user_info.username == identity.username
    assert pods.items == []
    assert configuration.verify_ssl


def test_deleted_namespace_is_finalized_by_the_namespace_controller_with_its_contents(
    control_plane: Cluster, admin: client.CoreV1Api, ns_factory: NamespaceFactory
) -> None:
    """Objects outlive their namespace in etcd unless the controller removes them: a namespace
    recreated under the same name must not inherit the old pods or RoleBindings."""
    namespace = ns_factory()
    admin.create_namespaced_pod(namespace, _pod("before"))
    control_plane.grant(control_plane.service_account_client(namespace, _sa_name()), namespace, POD_RULES)

    control_plane.delete_namespace(namespace)
    control_plane.finish_namespace_deletion(namespace)  # only waits: nothing was held

    control_plane.create_namespace(namespace)
    assert admin.list_namespaced_pod(namespace).items == []
    rbac = client.RbacAuthorizationV1Api(admin.api_client)
    assert rbac.list_namespaced_role_binding(namespace).items == []


def test_held_namespace_stays_terminating_with_its_pods_until_released(
    control_plane: Cluster, admin: client.CoreV1Api, ns_factory: NamespaceFactory
) -> None:
    namespace = ns_factory()
    admin.create_namespaced_pod(namespace, _pod("before"))

    control_plane.delete_namespace(namespace, hold=True)

    assert admin.read_namespace(namespace).status.phase == "Terminating"
    with pytest.raises(ApiException) as caught:
        admin.create_namespaced_pod(namespace, _pod("after"))
    assert caught.value.status == 403
    assert "is being terminated" in caught.value.body

    def pod_marked_deleted() -> bool:
        return admin.read_namespaced_pod("before", namespace).metadata.deletion_timestamp is not None

    wait_until(pod_marked_deleted, "the namespace controller to delete the held pod")
    assert admin.read_namespace(namespace).status.phase == "Terminating"

    control_plane.finish_namespace_deletion(namespace)

    assert _status_of(lambda: admin.read_namespace(namespace)) == 404
    assert admin.list_pod_for_all_namespaces(field_selector=f"metadata.namespace={namespace}").items == []


def test_controller_manager_mints_tokens_for_legacy_token_secrets(
    control_plane: Cluster, admin: client.CoreV1Api, ns_factory: NamespaceFactory
) -> None:
    """Older deploy tooling still creates token Secrets; only the token controller fills them."""
    namespace = ns_factory()
    account = _sa_name()
    control_plane.service_account_client(namespace, account)
    secret = client.V1Secret(
        metadata=client.V1ObjectMeta(
            name=f"{account}-token", annotations={"kubernetes.io/service-account.name": account}
        ),
        type="kubernetes.io/service-account-token",
    )
    admin.create_namespaced_secret(namespace, secret)

    def token() -> str | None:
        data = admin.read_namespaced_secret(f"{account}-token", namespace).data or {}
        return data.get("token")

    wait_until(token, "the token controller to fill the Secret")
    encoded = token()
    assert encoded is not None
    with client.ApiClient(control_plane._configuration(base64.b64decode(encoded).decode())) as api_client:
        review = client.AuthenticationV1Api(api_client).create_self_subject_review(
            client.V1SelfSubjectReview()
        )
    assert review.status.user_info.username == f"system:serviceaccount:{namespace}:{account}"


def test_namespace_labels_are_set_and_removed(
    control_plane: Cluster, admin: client.CoreV1Api, ns_factory: NamespaceFactory
) -> None:
    namespace = ns_factory({"team": "a", "tier": "gold"})

    control_plane.label_namespace(namespace, {"team": None, "env": "prod"})

    labels = admin.read_namespace(namespace).metadata.labels
    assert labels["tier"] == "gold"
    assert labels["env"] == "prod"
    assert "team" not in labels


def test_pod_stays_pending_until_harness_moves_it(
    control_plane: Cluster, admin: client.CoreV1Api, ns_factory: NamespaceFactory
) -> None:
    namespace = ns_factory()
    admin.create_namespaced_pod(namespace, _pod("task"))
    assert admin.read_namespaced_pod("task", namespace).status.phase == "Pending"

    control_plane.set_pod_phase(namespace, "task", "Running")
    running = admin.read_namespaced_pod("task", namespace).status
    control_plane.set_pod_phase(namespace, "task", "Succeeded")
    done = admin.read_namespaced_pod("task", namespace).status

    assert running.phase == "Running"
    assert running.container_statuses[0].state.running is not None
    assert done.phase == "Succeeded"
    [base] = done.container_statuses
    assert base.name == "base"
    assert base.state.running is None
    assert base.state.terminated.exit_code == 0


def test_failed_pod_carries_its_exit_code(
    control_plane: Cluster, admin: client.CoreV1Api, ns_factory: NamespaceFactory
) -> None:
    namespace = ns_factory()
    admin.create_namespaced_pod(namespace, _pod("task"))

    control_plane.set_pod_phase(namespace, "task", "Failed", exit_code=137)

    status = admin.read_namespaced_pod("task", namespace).status
    assert status.phase == "Failed"
    assert status.container_statuses[0].state.terminated.exit_code == 137
    assert status.container_statuses[0].state.terminated.reason == "Error"


def _process_alive(pid: int, binary: str) -> bool:
    """By /proc, so a PID the kernel has since handed to another program does not count."""
    try:
        return binary in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except FileNotFoundError:
        return False


def _private_plane() -> ControlPlane:
    """A second control plane, so killing its processes cannot break the session's tests."""
    binaries = find_binaries()
    if binaries is None:
        pytest.skip("restarts and stop() are properties of the process control plane")
    return ControlPlane(binaries)


def test_restarts_keep_port_and_data_and_stop_leaves_nothing_behind() -> None:
    with _private_plane() as plane:
        host, first_pids = plane.host, (plane.apiserver_pid, plane.etcd_pid)
        controller_manager_pid = plane.controller_manager_pid
        plane.create_namespace("survivor")

        plane.restart_apiserver(downtime=0.5)
        plane.label_namespace("survivor", {"after": "apiserver-restart"})
        plane.restart_etcd(downtime=0.5)
        plane.label_namespace("survivor", {"after": "etcd-restart"})

        with plane.admin_api_client() as api_client:
            survivor = client.CoreV1Api(api_client).read_namespace("survivor")
        assert survivor.metadata.labels["after"] == "etcd-restart"
        assert plane.host == host
        last_pids = (plane.apiserver_pid, plane.etcd_pid)
        assert last_pids != first_pids
        tmpdir = plane.tmpdir

    for apiserver_pid, etcd_pid in (first_pids, last_pids):
        assert not _process_alive(apiserver_pid, "kube-apiserver")
        assert not _process_alive(etcd_pid, "etcd")
    assert not _process_alive(controller_manager_pid, "kube-controller-manager")
    assert not tmpdir.exists()


def test_a_port_another_runs_etcd_took_is_never_shared_but_retried_on_fresh_ports(
    control_plane: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Test runs and benchmarks start control planes side by side; free_ports() cannot reserve a
    port until the server binds it. An etcd of another run on our port answers /health too: had we
    taken it for ours, two clusters would share one store until the other run stopped it."""
    if not isinstance(control_plane, ControlPlane):
        pytest.skip("ports are chosen by the process control plane")
    taken = int(control_plane.etcd_url.rsplit(":", 1)[1])  # the session's etcd: alive, healthy
    picks = iter([[taken, *free_ports(2)]])
    monkeypatch.setattr(controlplane, "free_ports", lambda count: next(picks, None) or free_ports(count))

    with _private_plane() as plane:
        assert plane.etcd_url != control_plane.etcd_url
        plane.create_namespace("only-here")
        with control_plane.admin_api_client() as api_client:
            names = {ns.metadata.name for ns in client.CoreV1Api(api_client).list_namespace().items}
        assert "only-here" not in names
