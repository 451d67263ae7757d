"""Access changes seen by the RBAC watch: reviews at once where they can matter, polling slowed.

The controller is driven through its seams as in test_controller.py; the RBAC watch's own
filtering (which objects can affect us) is tested on the objects as the API server sends them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kubernetes import client

from airflow_provider_nsdiscovery.config import DiscoverySettings
from airflow_provider_nsdiscovery.discovery.controller import AUTHORIZER_SETTLE
from airflow_provider_nsdiscovery.discovery.permissions import RBAC_WATCH_RULE
from airflow_provider_nsdiscovery.discovery.rbac_watch import RbacWatch, grants_pods, names_identity
from airflow_provider_nsdiscovery.discovery.status import State
from tests.unit.discovery_fakes import ALL_MISSING, IDENTITY, SELECTOR, FakeNamespace, Harness, make_harness


def _started(*names: str, watching: bool = False) -> Harness:
    harness = make_harness(access_recheck_interval=60.0)
    for name in names:
        harness.cluster.namespaces[name] = FakeNamespace(dict(SELECTOR))
    harness.discovery.start(threads=False)
    harness.access_watch.watching = watching
    harness.source.relist()
    harness.settle()
    return harness


def _state(harness: Harness, name: str) -> State | None:
    status = harness.discovery.status(name)
    return status.state if status else None


def test_a_rolebinding_removed_is_acted_on_at_once_without_waiting_for_the_recheck() -> None:
    harness = _started("team-a", "team-b")
    reviews = harness.cluster.calls["review"]
    harness.cluster.namespaces["team-a"].missing = ALL_MISSING
    harness.access_watch.changed("team-a", "rolebinding team-a/pods deleted")
    harness.settle()
    assert _state(harness, "team-a") is State.FORBIDDEN
    assert _state(harness, "team-b") is State.PERMITTED
    assert harness.cluster.calls["review"] == reviews + 1  # only the namespace the change is in


def test_a_change_the_authorizer_had_not_seen_yet_is_caught_by_the_review_a_moment_later() -> None:
    harness = _started("team-a")
    harness.access_watch.changed("team-a", "rolebinding team-a/pods deleted")
    harness.settle()  # the API server's authorizer still had the old binding: allowed
    assert _state(harness, "team-a") is State.PERMITTED
    harness.advance(AUTHORIZER_SETTLE[0])
    harness.cluster.namespaces["team-a"].missing = ALL_MISSING  # the authorizer caught up late
    reviews = harness.cluster.calls["review"]
    harness.advance(AUTHORIZER_SETTLE[-1])
    assert _state(harness, "team-a") is State.FORBIDDEN
    assert harness.cluster.calls["review"] == reviews + 1  # by the next review of the ladder


def test_a_cluster_scoped_change_reviews_every_reviewed_namespace_once() -> None:
    harness = _started("team-a", "team-b")
    reviews = harness.cluster.calls["review"]
    for _ in range(5):  # a burst of ClusterRole updates coalesces in the queue
        harness.access_watch.changed(None, "clusterrole edit modified")
    harness.settle()
    assert harness.cluster.calls["review"] == reviews + 3  # team-a, team-b and the home namespace


def test_a_change_in_a_namespace_that_was_never_selected_costs_no_review() -> None:
    harness = _started("team-a")
    reviews = harness.cluster.calls["review"]
    harness.access_watch.changed("elsewhere", "rolebinding elsewhere/x created")
    harness.settle()
    assert harness.cluster.calls["review"] == reviews
    assert harness.discovery.status("elsewhere") is None


def _reviews_over(harness: Harness, seconds: float) -> int:
    before = harness.cluster.calls["review"]
    for _ in range(int(seconds / 10)):
        harness.advance(10)
    return harness.cluster.calls["review"] - before


BACKSTOP_INTERVAL = DiscoverySettings().access_backstop_interval


def test_while_rbac_changes_are_watched_the_periodic_recheck_is_only_a_slow_backstop() -> None:
    watched = _started("team-a", watching=True)
    polled = _started("team-a", watching=False)
    assert _reviews_over(watched, BACKSTOP_INTERVAL / 2 - 10) == 0  # first re-checks: [0.5, 1] x interval
    assert _reviews_over(polled, BACKSTOP_INTERVAL / 2 - 10) > 20  # two namespaces, every 54-66 s
    assert _reviews_over(watched, BACKSTOP_INTERVAL * 1.2) >= 2


def _binding(subjects: list[dict[str, str]], namespace: str = "team-a") -> dict[str, Any]:
    return {"metadata": {"name": "b", "namespace": namespace, "resourceVersion": "1"}, "subjects": subjects}


def _role(rules: list[dict[str, list[str]]], version: str = "1") -> dict[str, Any]:
    return {"metadata": {"name": "r", "namespace": "team-a", "resourceVersion": version}, "rules": rules}


def _watch(changed: Callable[[str | None, str], None]) -> RbacWatch:
    return RbacWatch(client.ApiClient(), changed, lambda: IDENTITY, retry_refused_after=60)


def test_only_rules_that_can_mention_pods_make_a_role_relevant() -> None:
    assert grants_pods(_role([{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]))
    assert grants_pods(_role([{"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]}]))
    assert grants_pods(_role([{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}]))
    assert not grants_pods(_role([{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["*"]}]))
    assert not grants_pods(_role([{"apiGroups": ["apps"], "resources": ["pods"], "verbs": ["*"]}]))


def test_a_binding_is_relevant_when_its_subjects_can_include_the_scheduler() -> None:
    namespace, name = IDENTITY.removeprefix("system:serviceaccount:").split(":")
    ours = {"kind": "ServiceAccount", "name": name, "namespace": namespace}
    assert names_identity(_binding([ours]), IDENTITY)
    assert names_identity(_binding([{"kind": "Group", "name": "system:serviceaccounts"}]), IDENTITY)
    assert names_identity(_binding([{"kind": "User", "name": "alice"}]), None)  # not known yet
    assert not names_identity(_binding([{**ours, "namespace": "other"}]), IDENTITY)
    assert not names_identity(_binding([{"kind": "User", "name": "alice"}]), IDENTITY)


def test_the_rbac_watch_reports_what_can_affect_us_including_a_rule_that_stopped_mentioning_pods() -> None:
    changes: list[tuple[str | None, str]] = []
    watch = RbacWatch(
        client.ApiClient(),
        lambda ns, why: changes.append((ns, why)),
        lambda: IDENTITY,
        retry_refused_after=60,
    )
    assert sorted(r.what for r in watch.reflectors) == sorted(RBAC_WATCH_RULE["resources"])
    pods = [{"apiGroups": [""], "resources": ["pods"], "verbs": ["create"]}]
    secrets = [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}]
    watch.relisted("roles", [])
    watch.observed("roles", "ADDED", _role(secrets))
    assert changes == []  # nothing about pods
    watch.observed("roles", "MODIFIED", _role(pods, "2"))
    watch.observed("roles", "MODIFIED", _role(secrets, "3"))  # pods taken away: matters too
    watch.observed(
        "clusterrolebindings",
        "ADDED",
        {**_binding([{"kind": "Group", "name": "g"}]), "metadata": {"name": "c", "resourceVersion": "4"}},
    )
    assert [ns for ns, _ in changes] == ["team-a", "team-a", None]


def test_a_change_made_while_the_watch_was_down_is_reported_when_it_relists() -> None:
    changes: list[str | None] = []
    watch = RbacWatch(
        client.ApiClient(), lambda ns, why: changes.append(ns), lambda: IDENTITY, retry_refused_after=60
    )
    pods = [{"apiGroups": [""], "resources": ["pods"], "verbs": ["create"]}]
    watch.relisted("roles", [_role(pods)])
    assert changes == []  # the first list only records what exists
    watch.relisted("roles", [_role(pods)])
    assert changes == []  # nothing changed
    watch.relisted("roles", [])  # deleted while the watch was down
    assert changes == ["team-a"]


def test_a_refused_rbac_watch_is_an_answer_and_its_loop_waits_as_a_healthy_step() -> None:
    """Raising would count as a failing loop (and an unhealthy scheduler) for as long as the
    rights are missing, which is a valid way to run: polling goes on."""
    watch = _watch(lambda ns, why: None)
    pauses: list[float] = []
    steps = watch.loops(pauses.append)
    for reflector in watch.reflectors:
        reflector.sync_once = _refused  # type: ignore[method-assign]
    for step in steps.values():
        step()  # refused: returns
        step()  # waits, as its own step
    assert len(pauses) == len(steps)
    assert all(55 < pause <= 60 for pause in pauses)
    assert not watch.watching


def _refused() -> None:
    raise client.ApiException(status=403, reason="Forbidden")
