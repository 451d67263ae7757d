"""Namespace discovery against a real API server, with the scheduler acting as a ServiceAccount."""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest
from kubernetes import client

from airflow_provider_nsdiscovery.discovery.contracts import WatchPlan
from airflow_provider_nsdiscovery.discovery.controller import NamespaceDiscovery
from airflow_provider_nsdiscovery.discovery.status import State
from kubeharness import Cluster, Identity, wait_until
from tests.harness.executor_pods import POD_RULES

ALL_MISSING = "create pods, get pods, list pods, watch pods, patch pods, delete pods, get pods/log"


def _state(discovery: NamespaceDiscovery, name: str) -> State | None:
    status = discovery.status(name)
    return status.state if status else None


def test_labelled_namespace_with_rbac_is_permitted_and_watched(
    control_plane: Cluster,
    ns_factory: Callable[..., str],
    scheduler: Identity,
    selector_label: str,
    start_discovery: Callable[..., NamespaceDiscovery],
) -> None:
    team = ns_factory(labels={selector_label: "true"})
    control_plane.grant(scheduler, team, POD_RULES)

    discovery = start_discovery()

    assert _state(discovery, team) is State.PERMITTED
    assert discovery.watched() == {scheduler.namespace, team}


def test_unlabelled_namespace_with_rbac_is_not_watched(
    control_plane: Cluster,
    ns_factory: Callable[..., str],
    scheduler: Identity,
    start_discovery: Callable[..., NamespaceDiscovery],
    selector_label: str,
) -> None:
    team = ns_factory()
    control_plane.grant(scheduler, team, POD_RULES)

    discovery = start_discovery()

    assert team not in discovery.watched()
    status = discovery.check(team)
    assert status.state is State.NOT_SELECTED
    assert status.message == (
        f"namespace '{team}' is not selected: it lacks label {selector_label}=true "
        f"(kubectl label namespace {team} {selector_label}=true)"
    )


def test_labelled_namespace_without_rolebinding_is_forbidden_listing_every_missing_verb(
    ns_factory: Callable[..., str],
    scheduler: Identity,
    selector_label: str,
    start_discovery: Callable[..., NamespaceDiscovery],
) -> None:
    team = ns_factory(labels={selector_label: "true"})

    discovery = start_discovery()

    status = discovery.status(team)
    assert status is not None
    assert status.state is State.FORBIDDEN
    assert f"scheduler identity {scheduler.username} lacks: {ALL_MISSING} in {team}" in status.message
    assert team not in discovery.watched()


def test_partial_rbac_without_delete_is_forbidden_naming_delete_pods(
    control_plane: Cluster,
    ns_factory: Callable[..., str],
    scheduler: Identity,
    selector_label: str,
    start_discovery: Callable[..., NamespaceDiscovery],
) -> None:
    team = ns_factory(labels={selector_label: "true"})
    control_plane.grant(
        scheduler,
        team,
        [
            client.V1PolicyRule(
                api_groups=[""], resources=["pods"], verbs=["create", "get", "list", "watch", "patch"]
            ),
            client.V1PolicyRule(api_groups=[""], resources=["pods/log"], verbs=["get"]),
        ],
    )

    discovery = start_discovery()

    status = discovery.status(team)
    assert status is not None
    assert status.state is State.FORBIDDEN
    assert status.reason.endswith(f"lacks: delete pods in {team}")
    assert f"--serviceaccount={scheduler.namespace}:{scheduler.name}" in status.fix


def test_label_added_at_runtime_starts_watching_and_label_removed_stops(
    control_plane: Cluster,
    ns_factory: Callable[..., str],
    scheduler: Identity,
    selector_label: str,
    start_discovery: Callable[..., NamespaceDiscovery],
) -> None:
    team = ns_factory()
    control_plane.grant(scheduler, team, POD_RULES)
    changes: list[WatchPlan] = []
    discovery = start_discovery()
    discovery._on_change = changes.append
    assert team not in discovery.watched()

    control_plane.label_namespace(team, {selector_label: "true"})
    wait_until(lambda: team in discovery.watched(), f"{team} watched after labelling")
    assert changes[-1].namespaces == {scheduler.namespace, team}

    control_plane.label_namespace(team, {selector_label: None})
    wait_until(lambda: team not in discovery.watched(), f"{team} unwatched after unlabelling")
    assert _state(discovery, team) is State.NOT_SELECTED
    assert changes[-1].namespaces == {scheduler.namespace}


def test_deleted_namespace_stops_being_watched(
    control_plane: Cluster,
    ns_factory: Callable[..., str],
    scheduler: Identity,
    selector_label: str,
    start_discovery: Callable[..., NamespaceDiscovery],
) -> None:
    team = ns_factory(labels={selector_label: "true"})
    control_plane.grant(scheduler, team, POD_RULES)
    discovery = start_discovery()
    assert team in discovery.watched()

    control_plane.delete_namespace(team, hold=True)
    wait_until(lambda: _state(discovery, team) is State.TERMINATING, f"{team} terminating")
    assert team not in discovery.watched()

    control_plane.finish_namespace_deletion(team)
    wait_until(lambda: discovery.check(team).state is State.ABSENT, f"{team} absent")


def test_rolebinding_removed_at_runtime_is_forbidden_within_the_recheck_interval(
    control_plane: Cluster,
    ns_factory: Callable[..., str],
    scheduler: Identity,
    selector_label: str,
    start_discovery: Callable[..., NamespaceDiscovery],
) -> None:
    team = ns_factory(labels={selector_label: "true"})
    control_plane.grant(scheduler, team, POD_RULES)
    discovery = start_discovery(access_recheck_interval=1.0)
    assert team in discovery.watched()

    control_plane.revoke(scheduler, team)

    # 1 s interval, re-checks land within +-10 % of it: 5 s leaves room for a loaded machine.
    wait_until(lambda: _state(discovery, team) is State.FORBIDDEN, f"{team} forbidden", timeout=5)
    assert team not in discovery.watched()


def test_recheck_after_a_403_re_reviews_at_once(
    control_plane: Cluster,
    ns_factory: Callable[..., str],
    scheduler: Identity,
    selector_label: str,
    start_discovery: Callable[..., NamespaceDiscovery],
) -> None:
    team = ns_factory(labels={selector_label: "true"})
    control_plane.grant(scheduler, team, POD_RULES)
    discovery = start_discovery(access_recheck_interval=3600.0)
    control_plane.revoke(scheduler, team)
    assert _state(discovery, team) is State.PERMITTED  # nothing re-checks for an hour

    status = discovery.recheck(team, "creating a pod was refused")

    assert status.state is State.FORBIDDEN
    assert team not in discovery.watched()


def test_identity_without_cluster_namespace_list_uses_candidates_and_says_so(
    control_plane: Cluster,
    ns_factory: Callable[..., str],
    selector_label: str,
    start_discovery: Callable[..., NamespaceDiscovery],
    caplog: pytest.LogCaptureFixture,
) -> None:
    home = ns_factory()
    allowed, not_allowed = ns_factory(), ns_factory()
    identity = control_plane.service_account_client(
        home, "scheduler", namespace_rules={home: POD_RULES, allowed: POD_RULES}
    )

    with caplog.at_level(logging.WARNING, logger="airflow_provider_nsdiscovery"):
        discovery = start_discovery(identity, candidate_namespaces=(allowed, not_allowed))

    assert discovery.mode == "candidate-namespaces"
    assert discovery.watched() == {home, allowed}
    assert _state(discovery, not_allowed) is State.FORBIDDEN
    fallback = [
        r.getMessage() for r in caplog.records if "may not list namespaces cluster-wide" in r.getMessage()
    ]
    assert len(fallback) == 1
    assert allowed in fallback[0]
    assert identity.username in fallback[0]


def test_excluded_namespace_is_never_used_even_when_labelled_and_granted(
    control_plane: Cluster,
    ns_factory: Callable[..., str],
    scheduler: Identity,
    selector_label: str,
    start_discovery: Callable[..., NamespaceDiscovery],
) -> None:
    team = ns_factory(labels={selector_label: "true"})
    control_plane.grant(scheduler, team, POD_RULES)

    discovery = start_discovery(exclude_namespaces=(team,))

    assert team not in discovery.watched()
    assert discovery.check(team).state is State.EXCLUDED
