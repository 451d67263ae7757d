"""Task placement: a task whose pod was seen ending stops counting at once, and leaves once.

The counts decide draining (controller.py); a task seen finished by its pod watcher must release
its namespace before the scheduler's ``sync()`` takes it out, and that later removal, a second
sighting or a retry must neither count it twice nor drop another task's count.
"""

from __future__ import annotations

from airflow_provider_nsdiscovery.discovery.placement import TaskPlacement
from airflow_provider_nsdiscovery.discovery.status import State
from tests.unit.discovery_fakes import SELECTOR, FakeNamespace, make_harness


def _placement() -> tuple[TaskPlacement[str], list[str]]:
    changes: list[str] = []
    return TaskPlacement(changes.append), changes


def test_a_finished_task_stops_counting_but_still_tells_its_namespace() -> None:
    placement, changes = _placement()
    placement.place("task-1", "team-a")
    placement.place("task-2", "team-a")
    assert placement.finished("task-1", "team-a")
    assert placement.count("team-a") == 1
    assert placement.namespace_of("task-1") == "team-a"  # its result is still checked against it
    assert changes == ["team-a", "team-a", "team-a"]


def test_a_finished_task_seen_again_or_removed_later_changes_no_count() -> None:
    placement, changes = _placement()
    placement.place("task-1", "team-a")
    placement.finished("task-1", "team-a")
    assert not placement.finished("task-1", "team-a")
    assert placement.remove("task-1") == "team-a"
    assert placement.remove("task-1") is None
    assert not placement.has_tasks("team-a")
    assert placement.count("team-a") == 0
    assert changes == ["team-a", "team-a"]  # placed, finished: nothing after


def test_removing_a_finished_task_leaves_the_other_tasks_counted() -> None:
    placement, _ = _placement()
    placement.place("task-1", "team-a")
    placement.place("task-2", "team-a")
    placement.finished("task-1", "team-a")
    placement.remove("task-1")
    assert placement.count("team-a") == 1
    placement.remove("task-2")
    assert not placement.has_tasks("team-a")


def test_the_end_of_a_task_never_placed_is_ignored() -> None:
    placement, changes = _placement()
    assert not placement.finished("another-schedulers-task", "team-a")
    assert placement.items() == []
    assert changes == []


def test_a_pod_elsewhere_claiming_the_task_does_not_release_its_namespace() -> None:
    placement, changes = _placement()
    placement.place("task-1", "team-a")
    assert not placement.finished("task-1", "team-b")
    assert placement.count("team-a") == 1
    assert not placement.is_finished("task-1")
    assert changes == ["team-a"]


def test_a_finished_task_placed_again_counts_again() -> None:
    placement, _ = _placement()
    placement.place("task-1", "team-a")
    placement.finished("task-1", "team-a")
    placement.place("task-1", "team-a")
    assert not placement.is_finished("task-1")
    assert placement.count("team-a") == 1
    placement.place("task-1", "team-b")
    assert (placement.count("team-a"), placement.count("team-b")) == (0, 1)


def test_a_draining_namespace_stops_being_watched_once_its_last_task_is_seen_finished() -> None:
    harness = make_harness(None)
    harness.cluster.namespaces["team-a"] = FakeNamespace(dict(SELECTOR))
    harness.discovery.start(threads=False)
    harness.source.relist()
    harness.settle()
    placement = harness.discovery.placement
    placement.place("task-1", "team-a")
    placement.place("task-2", "team-a")
    harness.cluster.namespaces["team-a"].labels = {}
    harness.source.event("DELETED", "team-a")
    harness.settle()
    placement.finished("task-1", "team-a")
    harness.settle()
    assert harness.discovery.status("team-a").state is State.DRAINING  # type: ignore[union-attr]
    placement.finished("task-2", "team-a")
    harness.settle()
    assert harness.discovery.status("team-a").state is State.NOT_SELECTED  # type: ignore[union-attr]
    assert "team-a" not in harness.plans[-1].namespaces
    placement.remove("task-1")  # sync() reports them later: the namespace stays released
    placement.remove("task-2")
    harness.settle()
    assert "team-a" not in harness.plans[-1].namespaces
