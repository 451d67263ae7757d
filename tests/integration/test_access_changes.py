"""RBAC changes seen as they happen, on the real control plane.

The re-check interval is set to an hour in the tests that watch RBAC, so a change acted on within
seconds can only have been seen by the watch; without the rights to watch, polling goes on.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from kubernetes import client

from airflow_provider_nsdiscovery.discovery.controller import NamespaceDiscovery
from airflow_provider_nsdiscovery.discovery.permissions import RBAC_WATCH_RULE
from airflow_provider_nsdiscovery.discovery.status import State
from kubeharness import NAMESPACE_READ_RULES, Cluster, Identity, wait_until
from tests.harness.executor_pods import POD_RULES
from tests.integration.faults import SETTLE_TIMEOUT

AN_HOUR = 3600.0
RBAC_WATCH_RULES = [
    client.V1PolicyRule(
        api_groups=RBAC_WATCH_RULE["apiGroups"],
        resources=RBAC_WATCH_RULE["resources"],
        verbs=RBAC_WATCH_RULE["verbs"],
    )
]


@pytest.fixture
def rbac_reader(control_plane: Cluster, ns_factory: Callable[..., str]) -> Identity:
    """The scheduler with deploy/cluster-role.yaml and deploy/rbac-watch.yaml applied."""
    home = ns_factory()
    return control_plane.service_account_client(
        home,
        "scheduler",
        cluster_rules=[*NAMESPACE_READ_RULES, *RBAC_WATCH_RULES],
        namespace_rules={home: POD_RULES},
    )


def _state(discovery: NamespaceDiscovery, name: str) -> State | None:
    status = discovery.status(name)
    return status.state if status else None


def _watching(discovery: NamespaceDiscovery) -> NamespaceDiscovery:
    wait_until(lambda: discovery.access_watched, "the RBAC watches to be open")
    return discovery


def test_a_rolebinding_deleted_is_acted_on_at_once_not_at_the_next_recheck(
    control_plane: Cluster,
    ns_factory: Callable[..., str],
    rbac_reader: Identity,
    selector_label: str,
    start_discovery: Callable[..., NamespaceDiscovery],
) -> None:
    team = ns_factory(labels={selector_label: "true"})
    control_plane.grant(rbac_reader, team, POD_RULES)
    discovery = _watching(start_discovery(rbac_reader, access_recheck_interval=AN_HOUR))
    assert _state(discovery, team) is State.PERMITTED

    control_plane.revoke(rbac_reader, team)

    wait_until(lambda: _state(discovery, team) is State.FORBIDDEN, f"{team} to be forbidden")
    assert all(loop.healthy for loop in discovery.health())


def test_pod_rights_added_to_the_scheduler_s_clusterrole_are_acted_on_at_once(
    control_plane: Cluster,
    ns_factory: Callable[..., str],
    rbac_reader: Identity,
    selector_label: str,
    start_discovery: Callable[..., NamespaceDiscovery],
) -> None:
    team = ns_factory(labels={selector_label: "true"})
    discovery = _watching(start_discovery(rbac_reader, access_recheck_interval=AN_HOUR))
    assert _state(discovery, team) is State.FORBIDDEN

    control_plane.grant_cluster_wide(rbac_reader, [*NAMESPACE_READ_RULES, *RBAC_WATCH_RULES, *POD_RULES])

    wait_until(lambda: _state(discovery, team) is State.PERMITTED, f"{team} to be permitted")


def test_without_the_rights_to_watch_rbac_access_is_polled_and_no_loop_fails(
    control_plane: Cluster,
    team: Callable[[], str],
    scheduler: Identity,
    start_discovery: Callable[..., NamespaceDiscovery],
) -> None:
    name = team()  # labelled, and the scheduler may manage pods there
    discovery = start_discovery(scheduler, access_recheck_interval=1.0)

    control_plane.revoke(scheduler, name)

    wait_until(
        lambda: _state(discovery, name) is State.FORBIDDEN, f"{name} to be forbidden", timeout=SETTLE_TIMEOUT
    )
    assert not discovery.access_watched
    assert all(loop.healthy for loop in discovery.health())  # a 403 on the RBAC watch is an answer
