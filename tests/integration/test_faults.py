"""Fault injection against the real control plane: crashes, expired watches, lost access, deletion.

Every test here breaks something the executor depends on while it runs and then checks a guarantee
the scheduler relies on: watches come back, no pod outcome is lost, nothing spins, no task is
tracked as running forever, no pod is created twice. Outcomes are asserted, never durations: waits
are generous because a crashed API server takes seconds to come back and clients back off.

Crashing kube-apiserver or etcd needs the process control plane (on K3s those tests skip). The
session shares one control plane, so every test that crashes it requests ``outage``, which makes
sure it answers again before anything else runs.
"""

from __future__ import annotations

import base64
import json
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from airflow.utils.state import TaskInstanceState
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from airflow_provider_nsdiscovery.discovery.status import State
from kubeharness import NAMESPACE_READ_RULES, Cluster, ControlPlane, Identity, wait_until
from tests.harness.executor_pods import POD_RULES
from tests.integration.executor_helpers import (
    Executor,
    discovery_of,
    launch,
    pod_of,
    scheduler_of,
    status_of,
    sync_until,
    watched,
)
from tests.integration.faults import (
    CRASHES,
    DOWNTIME,
    RECOVERY_TIMEOUT,
    SETTLE_TIMEOUT,
    heartbeats,
    running,
    team_namespace,
    without_verbs,
)

# --------------------------------------------------------------------------------------------
# Fixtures and helpers


def _states(executor: Executor) -> dict[str, State]:
    assert executor.discovery is not None
    return {name: status.state for name, status in executor.discovery.table.snapshot().items()}


def _api_requests(executor: Executor) -> int:
    assert executor.discovery is not None
    return sum(executor.discovery.counters.requests.values())


def _count_pod_watch_requests(executor: Executor, monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """Count the requests the pod watchers send, per namespace, from now on.

    The watchers share one ApiClient (the scheduler's watch client), so wrapping its call_api sees
    every list/watch they send, including the failed ones.
    """
    api_client = scheduler_of(executor)._watch_api.api_client
    counts: Counter[str] = Counter()
    lock = threading.Lock()
    original = api_client.call_api

    def call_api(resource_path: str, method: str, path_params: Any = None, *args: Any, **kwargs: Any) -> Any:
        with lock:
            counts[str((path_params or {}).get("namespace"))] += 1
        return original(resource_path, method, path_params, *args, **kwargs)

    monkeypatch.setattr(api_client, "call_api", call_api)
    return counts


def _etcd_url(cluster: Cluster) -> str:
    if not isinstance(cluster, ControlPlane):
        pytest.skip("compacting etcd needs the process control plane, not K3s")
    return cluster.etcd_url


def _etcd_call(cluster: Cluster, path: str, body: dict[str, Any]) -> dict[str, Any]:
    """One call to etcd's v3 JSON gateway (the grpc-gateway every etcd serves on its client URL)."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    request = urllib.request.Request(
        f"{_etcd_url(cluster)}{path}",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with opener.open(request, timeout=10) as response:
        result: dict[str, Any] = json.loads(response.read())
        return result


def _compact_etcd(cluster: Cluster) -> int:
    """Drop all of etcd's history up to now, as the API server's periodic compaction does."""
    any_key = base64.b64encode(b"/registry/namespaces/").decode()
    revision = int(
        _etcd_call(cluster, "/v3/kv/range", {"key": any_key, "count_only": True})["header"]["revision"]
    )
    _etcd_call(cluster, "/v3/kv/compaction", {"revision": str(revision), "physical": True})
    return revision


def _namespace_read_bindings(rbac: client.RbacAuthorizationV1Api, scheduler: Identity) -> list[str]:
    return [
        binding.metadata.name
        for binding in rbac.list_cluster_role_binding().items
        if any(
            s.kind == "ServiceAccount" and (s.namespace, s.name) == (scheduler.namespace, scheduler.name)
            for s in binding.subjects or []
        )
    ]


def _revoke_namespace_reads(cluster: Cluster, scheduler: Identity) -> None:
    """Remove the scheduler's cluster-wide namespace rights; returns once they are refused."""
    with cluster.admin_api_client() as api_client:
        rbac = client.RbacAuthorizationV1Api(api_client)
        for name in _namespace_read_bindings(rbac, scheduler):
            rbac.delete_cluster_role_binding(name)
    as_scheduler = client.CoreV1Api(scheduler.api_client)

    def refused() -> bool:
        try:
            as_scheduler.list_namespace(limit=1)
        except ApiException as err:
            return bool(err.status == 403)
        return False

    wait_until(refused, "the scheduler to be refused listing namespaces")


def _restore_namespace_reads(cluster: Cluster, scheduler: Identity) -> None:
    """Bind the namespace rights again (as deploy/ does); returns once they are in force."""
    cluster.service_account_client(scheduler.namespace, scheduler.name, cluster_rules=NAMESPACE_READ_RULES)


# --------------------------------------------------------------------------------------------
# 1, 2: kube-apiserver or etcd crashes mid-run


@pytest.mark.parametrize("crash", list(CRASHES))
def test_after_a_control_plane_crash_watches_resume_and_no_pod_outcome_is_lost(
    crash: str,
    outage: Cluster,
    ns_factory: Callable[..., str],
    scheduler: Identity,
    selector_label: str,
    admin: client.CoreV1Api,
    make_executor: Callable[..., Executor],
) -> None:
    team = team_namespace(outage, ns_factory, scheduler, selector_label)
    late = ns_factory()
    outage.grant(scheduler, late, POD_RULES)
    executor = make_executor()
    fails, succeeds, at_home = launch(executor, team), launch(executor, team), launch(executor)
    survives = launch(executor, team)  # its pod runs on through the crash
    pods = {key: running(outage, admin, executor, key) for key in (fails, succeeds, at_home, survives)}
    executor.sync()
    before = _states(executor)
    assert before[team] is State.PERMITTED

    CRASHES[crash](outage, DOWNTIME)
    # Written the moment the API answers again, while the watchers are still backing off: the
    # pods finish "during" the outage as far as the watchers can tell.
    outage.set_pod_phase(team, pods[fails], "Failed", exit_code=1)
    outage.set_pod_phase(team, pods[succeeds], "Succeeded")
    outage.set_pod_phase(scheduler.namespace, pods[at_home], "Failed", exit_code=2)
    outage.label_namespace(late, {selector_label: "true"})

    sync_until(
        executor,
        lambda: not {fails, succeeds, at_home} & executor.running,
        "every finished pod reported",
        timeout=RECOVERY_TIMEOUT,
    )
    # The pods' own outcomes, not failures made up because a namespace looked unwatchable.
    for key in (fails, at_home):
        state, reason = executor.event_buffer[key]
        assert state == TaskInstanceState.FAILED
        assert "can no longer be watched" not in str(reason)
    assert executor.event_buffer[succeeds] == (None, None)  # state read from the metadata DB: no row
    sync_until(
        executor,
        lambda: late in watched(executor),
        f"{late}, labelled after the crash, watched",
        timeout=RECOVERY_TIMEOUT,
    )
    assert _states(executor) == {**before, late: State.PERMITTED}
    assert executor.discovery is not None
    assert executor.discovery.mode == "label-selector"
    assert all(w.is_alive() for w in scheduler_of(executor).kube_watchers.values())
    after_crash = launch(executor, late)
    assert pod_of(admin, executor, after_crash).metadata.namespace == late
    assert survives in executor.running  # a crash fails no task whose pod still runs
    assert executor.event_buffer[survives][0] == TaskInstanceState.QUEUED  # as launched: no final state


# --------------------------------------------------------------------------------------------
# 3: the namespace watch expires (410 Gone)


def test_an_expired_namespace_watch_relists_and_keeps_following_labels(
    outage: Cluster,
    ns_factory: Callable[..., str],
    scheduler: Identity,
    selector_label: str,
    make_executor: Callable[..., Executor],
) -> None:
    team = team_namespace(outage, ns_factory, scheduler, selector_label)
    leaving = team_namespace(outage, ns_factory, scheduler, selector_label)
    joining = ns_factory()
    outage.grant(scheduler, joining, POD_RULES)
    executor = make_executor()
    assert executor.discovery is not None
    lists = executor.discovery.counters.requests["list namespaces"]

    # Advance etcd past the watch's resourceVersion (the write is outside the selector, so the
    # watch never hears of it), forget all history, and restart the API server so its watch cache
    # starts from now: the watch can only resume from a revision that no longer exists.
    ns_factory()
    _compact_etcd(outage)
    outage.restart_apiserver()
    outage.label_namespace(joining, {selector_label: "true"})
    outage.label_namespace(leaving, {selector_label: None})

    wait_until(
        lambda: discovery_of(executor).counters.requests["list namespaces"] > lists,
        "discovery to list namespaces again after 410 Gone",
        timeout=RECOVERY_TIMEOUT,
    )
    sync_until(
        executor,
        lambda: watched(executor) == {scheduler.namespace, team, joining},
        "watchers to follow the labels changed across the expiry",
        timeout=RECOVERY_TIMEOUT,
    )
    states = _states(executor)
    assert (states[team], states[joining], states[leaving]) == (
        State.PERMITTED,
        State.PERMITTED,
        State.NOT_SELECTED,
    )
    assert executor.discovery.mode == "label-selector"


# --------------------------------------------------------------------------------------------
# 4: an unavailable API is retried with backoff, not in a busy loop


@pytest.mark.parametrize("failure", ["connection-refused", "forbidden"])
def test_an_unavailable_api_is_retried_with_backoff_not_in_a_busy_loop(
    failure: str,
    outage: Cluster,
    ns_factory: Callable[..., str],
    scheduler: Identity,
    selector_label: str,
    monkeypatch: pytest.MonkeyPatch,
    make_executor: Callable[..., Executor],
) -> None:
    team = team_namespace(outage, ns_factory, scheduler, selector_label)
    late = ns_factory()
    outage.grant(scheduler, late, POD_RULES)
    # Reviews are not due during the test, so every discovery request below is a retry.
    executor = make_executor(access_recheck_interval="3600")
    pod_watch_requests = _count_pod_watch_requests(executor, monkeypatch)
    discovery_before = _api_requests(executor)

    if failure == "connection-refused":
        outage.restart_apiserver(downtime=DOWNTIME)
    else:
        # The API server is up but refuses the namespace watch: the restart makes the watch
        # reconnect, and every attempt is answered 403 until the ClusterRoleBinding is back.
        _revoke_namespace_reads(outage, scheduler)
        outage.restart_apiserver()
        time.sleep(DOWNTIME)
    discovery_requests = _api_requests(executor) - discovery_before
    pod_requests = dict(pod_watch_requests)
    if failure == "forbidden":
        _restore_namespace_reads(outage, scheduler)

    # Exponential backoff makes a handful of attempts in the seconds of an outage; a loop that
    # retried at once would have made thousands against a refused port or an API answering errors.
    assert discovery_requests <= 30, f"namespace discovery sent {discovery_requests} requests"
    assert all(n <= 30 for n in pod_requests.values()), f"pod watchers sent {pod_requests}"
    # And nothing died of it: the same discovery and watchers carry on.
    outage.label_namespace(late, {selector_label: "true"})
    sync_until(
        executor,
        lambda: late in watched(executor),
        f"{late} watched after the outage",
        timeout=RECOVERY_TIMEOUT,
    )
    assert executor.discovery is not None
    assert executor.discovery.mode == "label-selector"
    assert watched(executor) == {scheduler.namespace, team, late}
    assert all(w.is_alive() for w in scheduler_of(executor).kube_watchers.values())


def test_a_namespace_is_used_again_after_a_moment_when_every_request_is_forbidden(
    control_plane: Cluster,
    ns_factory: Callable[..., str],
    scheduler: Identity,
    selector_label: str,
    admin: client.CoreV1Api,
    make_executor: Callable[..., Executor],
) -> None:
    """kube-apiserver answers 403 to everything a ServiceAccount asks while its RBAC cache warms
    up after a restart, and a deploy tool that re-creates bindings opens the same window."""
    team = team_namespace(control_plane, ns_factory, scheduler, selector_label)
    executor = make_executor(access_recheck_interval="1")
    assert executor.discovery is not None

    _revoke_namespace_reads(control_plane, scheduler)
    control_plane.revoke(scheduler, team)
    # Refused (listing pods for adoption, then creating the pod), so discovery looks at team again.
    refused = launch(executor, team)
    _restore_namespace_reads(control_plane, scheduler)
    control_plane.grant(scheduler, team, POD_RULES)

    state, reason = executor.event_buffer[refused]
    assert state == TaskInstanceState.FAILED
    assert f"namespace '{team}' is forbidden" in str(reason), reason  # not "not selected": it is labelled
    sync_until(
        executor,
        lambda: status_of(executor, team).state is State.PERMITTED and team in watched(executor),
        f"{team} permitted and watched again within the re-check interval",
        timeout=SETTLE_TIMEOUT,
    )
    key = launch(executor, team)
    assert pod_of(admin, executor, key).metadata.namespace == team


# --------------------------------------------------------------------------------------------
# 5: access revoked while a task runs


@pytest.mark.parametrize(
    "revoked",
    [
        pytest.param("create", id="create-revoked-drains"),
        pytest.param("everything", id="all-revoked"),
    ],
)
def test_a_task_running_where_access_is_revoked_is_not_tracked_as_running_forever(
    revoked: str,
    control_plane: Cluster,
    ns_factory: Callable[..., str],
    scheduler: Identity,
    selector_label: str,
    admin: client.CoreV1Api,
    make_executor: Callable[..., Executor],
) -> None:
    """The guarantee: once the scheduler stops being allowed to start pods in a namespace, a task
    already running there still leaves ``executor.running`` with a final state (its pod's, when
    the namespace drains; a failure that names the namespace, when it cannot be watched any more)
    instead of holding an executor slot until the scheduler restarts."""
    team = team_namespace(control_plane, ns_factory, scheduler, selector_label)
    executor = make_executor(access_recheck_interval="1")
    assert executor.discovery is not None
    key = launch(executor, team)
    pod = running(control_plane, admin, executor, key)

    if revoked == "create":
        control_plane.grant(scheduler, team, without_verbs(POD_RULES, "create"))
    else:
        control_plane.revoke(scheduler, team)
    sync_until(
        executor,
        lambda: status_of(executor, team).state is not State.PERMITTED,
        f"the re-check to notice that {team} lost access",
        timeout=SETTLE_TIMEOUT,
    )
    if revoked == "create":  # it may still watch: it drains, and the task keeps its watcher
        assert status_of(executor, team).state is State.DRAINING
        assert team in watched(executor)
    control_plane.set_pod_phase(team, pod, "Failed", exit_code=1)

    sync_until(
        executor,
        lambda: key not in executor.running,
        "the task to stop being tracked as running",
        timeout=SETTLE_TIMEOUT,
    )
    state, reason = executor.event_buffer[key]
    assert state == TaskInstanceState.FAILED
    if revoked == "everything":  # failed for the namespace, not for the pod nobody could watch
        assert f"namespace '{team}' is forbidden" in str(reason)
        assert "can no longer be watched" in str(reason)
    sync_until(
        executor,
        lambda: team not in watched(executor),
        f"the watcher of {team} to stop",
        timeout=SETTLE_TIMEOUT,
    )
    assert status_of(executor, team).state is State.FORBIDDEN


# --------------------------------------------------------------------------------------------
# 6: namespace deleted while its pods run


@pytest.mark.parametrize(
    "order",
    [
        pytest.param("pods-first", id="pods-deleted-first"),
        # Namespace controllers before OrderedNamespaceDeletion (1.34) may delete the RoleBinding first.
        pytest.param("rolebinding-first", id="rolebinding-deleted-first"),
    ],
)
def test_pods_killed_by_namespace_deletion_fail_their_tasks_then_the_watcher_stops(
    order: str,
    control_plane: Cluster,
    ns_factory: Callable[..., str],
    scheduler: Identity,
    selector_label: str,
    admin: client.CoreV1Api,
    make_executor: Callable[..., Executor],
) -> None:
    team = team_namespace(control_plane, ns_factory, scheduler, selector_label)
    executor = make_executor()
    assert executor.discovery is not None
    keys = [launch(executor, team), launch(executor, team)]
    for key in keys:
        running(control_plane, admin, executor, key)

    control_plane.delete_namespace(team, hold=True)  # the pods stay as if their kubelet were slow
    sync_until(
        executor,
        lambda: status_of(executor, team).state is State.DRAINING,
        f"{team} draining while its pods run",
        timeout=SETTLE_TIMEOUT,
    )
    assert team in watched(executor)
    if order == "rolebinding-first":  # by hand: kube-controller-manager 1.35 deletes pods first
        control_plane.revoke(scheduler, team)
        heartbeats(executor, 3.0)  # a namespace controller takes its time too
    control_plane.finish_namespace_deletion(team)  # the pods go, as their kubelet would let them

    # Upstream reports a Running pod that is DELETED with a deletionTimestamp as failed.
    sync_until(
        executor,
        lambda: not set(keys) & executor.running,
        "the killed pods to be reported",
        timeout=SETTLE_TIMEOUT,
    )
    assert [executor.event_buffer[key][0] for key in keys] == [TaskInstanceState.FAILED] * 2
    # With the RoleBinding gone first, the watch that was already open still sees the pods go (RBAC
    # does not end open watches); had it reconnected meanwhile, the namespace's reason fails them.
    sync_until(
        executor,
        lambda: team not in watched(executor),
        f"the watcher of deleted {team} to stop",
        timeout=SETTLE_TIMEOUT,
    )
    assert status_of(executor, team).state is State.ABSENT
