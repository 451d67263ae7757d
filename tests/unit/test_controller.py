"""The discovery controller, driven one reconcile at a time through its seams (no API server).

Each test changes the fake cluster, feeds the controller what a watch would see, lets it settle
and checks the published state: transient faults never change a state, draining follows the
executor's own task count, forbidden namespaces give up their tasks only once confirmed.
"""

from __future__ import annotations

import threading

import pytest

from airflow_provider_nsdiscovery.discovery.contracts import DiscoveryMode, WatchPlan
from airflow_provider_nsdiscovery.discovery.controller import CLUSTER_SCOPE
from airflow_provider_nsdiscovery.discovery.source import ListForbiddenError
from airflow_provider_nsdiscovery.discovery.status import AccessDecision, State
from tests.unit.discovery_fakes import (
    ALL_MISSING,
    IDENTITY,
    SELECTOR,
    FakeCluster,
    FakeNamespace,
    FakeReviewer,
    Harness,
    make_harness,
)


def _started(*names: str, **settings: object) -> Harness:
    """A controller that has listed ``names`` (labelled and granted) and decided them."""
    harness = make_harness(None, **settings)
    for name in names:
        harness.cluster.namespaces[name] = FakeNamespace(dict(SELECTOR))
    harness.discovery.start(threads=False)
    harness.source.relist()
    harness.settle()
    return harness


def _mode(harness: Harness) -> DiscoveryMode:
    """The mode now: a fresh read that mypy does not narrow to what an earlier assert saw."""
    return harness.discovery.mode


def _state(harness: Harness, name: str) -> State | None:
    status = harness.discovery.status(name)
    return status.state if status else None


def test_a_labelled_and_granted_namespace_is_permitted_and_in_the_watch_plan() -> None:
    harness = _started("team-a")
    assert _state(harness, "team-a") is State.PERMITTED
    assert harness.plans[-1] == WatchPlan(frozenset({"airflow", "team-a"}), cluster_wide=False)
    assert harness.discovery.identity == IDENTITY


def test_many_events_for_one_namespace_before_a_worker_takes_it_cost_one_review() -> None:
    harness = _started()
    harness.cluster.namespaces["team-a"] = FakeNamespace(dict(SELECTOR))
    reviews = harness.cluster.calls["review"]
    for _ in range(10):
        harness.source.event("MODIFIED", "team-a")
    harness.settle()
    assert harness.cluster.calls["review"] == reviews + 1
    assert _state(harness, "team-a") is State.PERMITTED


def test_a_review_that_fails_while_the_api_server_is_down_keeps_the_namespace_and_retries() -> None:
    harness = _started("team-a")
    harness.cluster.down = True
    harness.discovery.invalidate("team-a", "test: a 403 was seen")
    harness.settle()
    assert _state(harness, "team-a") is State.PERMITTED  # transient: the last good decision stands
    assert harness.discovery.queue.failures("team-a") == 1
    for _ in range(5):
        harness.advance(31)  # past the longest backoff
    assert harness.discovery.queue.failures("team-a") >= 5
    assert _state(harness, "team-a") is State.PERMITTED
    harness.cluster.down = False
    harness.cluster.namespaces["team-a"].missing = ALL_MISSING
    harness.advance(31)
    assert _state(harness, "team-a") is State.FORBIDDEN  # a definite answer does change it
    assert harness.discovery.queue.failures("team-a") == 0


def test_an_unreadable_namespace_that_left_the_selection_keeps_its_watcher_until_it_can_be_read() -> None:
    harness = _started("team-a")
    harness.discovery.placement.place("task-1", "team-a")
    harness.cluster.namespaces["team-a"].labels = {}
    harness.cluster.down = True
    harness.source.event("DELETED", "team-a")
    harness.settle()
    assert _state(harness, "team-a") is State.PERMITTED
    harness.cluster.down = False
    harness.advance(31)
    status = harness.discovery.status("team-a")
    assert status is not None
    assert status.state is State.DRAINING
    assert "until the 1 task launched here finishes" in status.reason


def test_a_namespace_without_tasks_that_left_the_selection_leaves_the_watch_plan_before_it_is_read() -> None:
    harness = _started("team-a")
    harness.cluster.namespaces["team-a"].labels = {}
    harness.cluster.down = True  # the read that tells why cannot answer yet
    harness.source.event("DELETED", "team-a")
    harness.settle()
    assert _state(harness, "team-a") is State.NOT_SELECTED
    assert "team-a" not in harness.plans[-1].namespaces
    del harness.cluster.namespaces["team-a"]
    harness.cluster.down = False
    harness.advance(31)
    assert _state(harness, "team-a") is State.ABSENT  # the read, once answered, gives the reason


def test_a_namespace_that_loses_its_label_drains_until_its_last_task_is_removed() -> None:
    harness = _started("team-a")
    harness.discovery.placement.place("task-1", "team-a")
    harness.discovery.placement.place("task-2", "team-a")
    harness.cluster.namespaces["team-a"].labels = {}
    harness.source.event("DELETED", "team-a")
    harness.settle()
    assert _state(harness, "team-a") is State.DRAINING
    assert "team-a" in harness.plans[-1].namespaces
    harness.discovery.placement.remove("task-1")
    harness.settle()
    assert _state(harness, "team-a") is State.DRAINING
    harness.discovery.placement.remove("task-2")
    harness.settle()
    assert _state(harness, "team-a") is State.NOT_SELECTED
    assert "team-a" not in harness.plans[-1].namespaces


def test_a_task_placed_while_the_namespace_is_being_re_decided_is_counted() -> None:
    """The launch race: the scheduler places a task and checks the table while reconcile runs."""
    harness = _started("team-a")
    harness.cluster.namespaces["team-a"].labels = {}
    launched: list[State | None] = []
    count = harness.discovery.placement.count

    def count_while_a_task_launches(namespace: str) -> int:
        # What the scheduler thread does between reconcile's first and second look at the table.
        harness.discovery.placement.place("task-1", namespace)
        launched.append(_state(harness, namespace))
        return count(namespace)

    harness.discovery.placement.count = count_while_a_task_launches  # type: ignore[method-assign]
    harness.source.event("DELETED", "team-a")
    harness.settle()
    assert launched[0] is State.DRAINING  # the launch would have been refused: no pod created
    assert _state(harness, "team-a") is State.DRAINING  # and had it been created, it is watched


def test_a_forbidden_namespace_keeps_its_tasks_until_a_review_one_interval_later_confirms_it() -> None:
    harness = _started("team-a", access_recheck_interval=60.0)
    harness.discovery.placement.place("task-1", "team-a")
    harness.cluster.namespaces["team-a"].missing = ALL_MISSING
    harness.discovery.invalidate("team-a", "test: watching pods was refused")
    harness.settle()
    status = harness.discovery.status("team-a")
    assert status is not None
    assert status.state is State.FORBIDDEN
    assert not status.gives_up_tasks
    harness.advance(59)
    assert not harness.discovery.status("team-a").gives_up_tasks  # type: ignore[union-attr]
    harness.advance(1.5)
    confirmed = harness.discovery.status("team-a")
    assert confirmed is not None
    assert confirmed.confirmed
    assert confirmed.gives_up_tasks


def test_a_binding_restored_within_the_grace_keeps_the_tasks() -> None:
    harness = _started("team-a", access_recheck_interval=60.0)
    harness.discovery.placement.place("task-1", "team-a")
    harness.cluster.namespaces["team-a"].missing = ALL_MISSING
    harness.discovery.invalidate("team-a", "test")
    harness.settle()
    harness.cluster.namespaces["team-a"].missing = ()
    harness.advance(61)
    assert _state(harness, "team-a") is State.PERMITTED


def test_a_403_on_the_cluster_wide_watch_falls_back_to_one_watch_per_namespace_and_probes_again() -> None:
    cluster = FakeCluster()
    cluster.cluster_wide = True
    harness = make_harness(cluster)
    harness.discovery.start(threads=False)
    harness.source.relist()
    harness.settle()
    assert harness.plans[-1].cluster_wide
    harness.discovery.invalidate(CLUSTER_SCOPE, "test: watching pods everywhere was refused")
    harness.settle()
    assert not harness.plans[-1].cluster_wide
    probes = cluster.calls["cluster"]
    harness.advance(30)
    assert cluster.calls["cluster"] == probes  # no probing in a loop
    harness.advance(40)
    assert cluster.calls["cluster"] == probes + 1
    assert harness.plans[-1].cluster_wide  # rights are still there: back to one watch


def test_an_unreachable_api_server_at_start_leaves_the_identity_to_be_asked_again_later() -> None:
    cluster = FakeCluster()
    cluster.down = True
    harness = make_harness(cluster)
    harness.discovery.start(threads=False)
    harness.settle()
    assert harness.discovery.identity == "the scheduler"
    assert _state(harness, "airflow") is State.PERMITTED  # the home namespace, as upstream would
    cluster.down = False
    harness.advance(31)
    assert harness.discovery.identity == IDENTITY


def test_listing_forbidden_at_first_is_retried_then_candidates_are_used_until_listing_works() -> None:
    cluster = FakeCluster()
    cluster.list_forbidden = True
    cluster.namespaces["team-c"] = FakeNamespace(dict(SELECTOR))
    harness = make_harness(cluster, candidate_namespaces=("team-c",), initial_sync_timeout=30.0)
    discovery = harness.discovery
    discovery.start(threads=False)
    with pytest.raises(ListForbiddenError):
        discovery._source_step()  # retried by the supervised loop: not yet the candidates
    assert discovery.mode is DiscoveryMode.LABEL_SELECTOR
    harness.clock.advance(11)
    discovery._source_step()
    harness.settle()
    assert _mode(harness) is DiscoveryMode.CANDIDATES
    assert _state(harness, "team-c") is State.PERMITTED
    cluster.list_forbidden = False
    harness.source.relist()
    harness.settle()
    assert discovery.mode is DiscoveryMode.LABEL_SELECTOR


def test_an_unexpected_exception_in_a_reconcile_is_retried_and_the_worker_goes_on() -> None:
    harness = _started()
    reviewer = harness.discovery._reviewer
    assert isinstance(reviewer, FakeReviewer)
    calls: list[str] = []

    def broken(namespace: str) -> AccessDecision:
        calls.append(namespace)
        if len(calls) == 1:
            raise RuntimeError("a bug in a review")
        return AccessDecision(IDENTITY, ())

    reviewer.review = broken  # type: ignore[method-assign]
    harness.cluster.namespaces["team-a"] = FakeNamespace(dict(SELECTOR))
    harness.source.event("ADDED", "team-a")
    harness.settle()
    assert _state(harness, "team-a") is State.PENDING
    harness.advance(1)
    assert _state(harness, "team-a") is State.PERMITTED


def test_check_of_a_namespace_labelled_a_moment_ago_looks_once_and_a_refusal_is_reused() -> None:
    harness = make_harness()
    harness.cluster.namespaces["team-a"] = FakeNamespace(dict(SELECTOR))
    harness.cluster.namespaces["team-b"] = FakeNamespace({})
    stop = threading.Event()
    worker = threading.Thread(
        target=lambda: [harness.discovery.process_next(0.01) for _ in iter(stop.is_set, True)]
    )
    harness.discovery.start(threads=False)
    worker.start()
    try:
        assert harness.discovery.check("team-a").state is State.PERMITTED  # no watch event yet
        reads = harness.cluster.calls["read"]
        assert harness.discovery.check("team-b").state is State.NOT_SELECTED
        assert harness.discovery.check("team-b").state is State.NOT_SELECTED
        assert harness.cluster.calls["read"] == reads + 1
    finally:
        stop.set()
        worker.join(5)


def test_check_defers_with_pending_when_no_answer_comes_in_time_and_the_next_tasks_do_not_wait() -> None:
    harness = make_harness()
    status = harness.discovery.check("team-x")  # no worker runs: nothing can answer
    assert status.state is State.PENDING
    assert not status.gives_up_tasks
    assert harness.discovery.check("team-x") is status  # reused, without a second wait
    harness.clock.advance(2.1)
    assert harness.discovery.check("team-x") is not status  # a new look once it expired


def test_a_refusal_moments_after_the_api_server_came_back_is_asked_again_before_it_is_believed() -> None:
    """A kube-apiserver that has just started answers 403 to everything until its RBAC caches
    are filled: a namespace whose binding never went away must not be refused for that."""
    harness = _started("team-a")
    harness.cluster.down = True
    with pytest.raises(ConnectionRefusedError):
        harness.discovery._source_step()  # the namespace watch breaks: the API server restarts
    harness.cluster.down = False
    harness.source.relist()  # ... and it is back
    harness.cluster.namespaces["team-a"].missing = ALL_MISSING  # its caches are still empty
    harness.discovery.invalidate("team-a", "test: a 403 from a starting API server")
    harness.settle()
    assert _state(harness, "team-a") is State.PERMITTED
    harness.cluster.namespaces["team-a"].missing = ()  # caches filled
    harness.advance(1)
    assert _state(harness, "team-a") is State.PERMITTED
    harness.clock.advance(10)  # past the warm-up, a refusal is an answer again
    harness.cluster.namespaces["team-a"].missing = ALL_MISSING
    harness.discovery.invalidate("team-a", "test: a 403 from a warm API server")
    harness.settle()
    assert _state(harness, "team-a") is State.FORBIDDEN


def test_placing_and_removing_tasks_does_not_read_the_whole_state_table() -> None:
    """Every task placed or finished re-decides its namespace; rebuilding the watch plan there read
    every namespace's row, O(namespaces) per task. Only a change of what is watched may do that."""
    harness = _started(*(f"team-{i}" for i in range(50)))
    table = harness.discovery.table
    reads = 0
    watched = table.watched

    def counted() -> frozenset[str]:
        nonlocal reads
        reads += 1
        return watched()

    table.watched = counted  # type: ignore[method-assign]
    for i in range(20):
        harness.discovery.placement.place(f"task-{i}", f"team-{i}")
        harness.settle()
        harness.discovery.placement.remove(f"task-{i}")
        harness.settle()
    assert reads == 0
    harness.cluster.namespaces["team-3"].labels = {}
    harness.source.event("DELETED", "team-3")
    harness.settle()
    assert reads == 1
    assert "team-3" not in harness.plans[-1].namespaces
