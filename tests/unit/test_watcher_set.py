"""WatcherSet: running pod watchers are reconciled to the desired namespaces."""

from __future__ import annotations

import pytest

from airflow_provider_nsdiscovery.watcher_set import ReconcileResult, WatcherSet


class FakeWatcher:
    """Stands in for a watcher process: alive from start() until terminate() (or a simulated crash)."""

    def __init__(self, namespace: str) -> None:
        self.namespace = namespace
        self.started = 0
        self.terminated = 0
        self.joined = 0
        self.alive = False

    def start(self) -> None:
        self.started += 1
        self.alive = True

    def is_alive(self) -> bool:
        return self.alive

    def terminate(self) -> None:
        self.terminated += 1
        self.alive = False

    def join(self, timeout: float | None = None) -> None:
        self.joined += 1


class Factory:
    def __init__(self) -> None:
        self.made: list[FakeWatcher] = []

    def __call__(self, namespace: str) -> FakeWatcher:
        watcher = FakeWatcher(namespace)
        self.made.append(watcher)
        return watcher

    def namespaces(self) -> list[str]:
        return [w.namespace for w in self.made]


@pytest.fixture
def factory() -> Factory:
    return Factory()


@pytest.fixture
def watchers(factory: Factory) -> WatcherSet[FakeWatcher]:
    return WatcherSet(factory)


def test_missing_watchers_are_created_and_started(
    factory: Factory, watchers: WatcherSet[FakeWatcher]
) -> None:
    result = watchers.reconcile({"team-b", "team-a"})
    assert result == ReconcileResult(started=frozenset({"team-a", "team-b"}))
    assert factory.namespaces() == ["team-a", "team-b"]
    assert set(watchers.running) == {"team-a", "team-b"}
    assert all(w.started == 1 and w.alive for w in watchers.running.values())


def test_unwanted_watchers_are_terminated_and_dropped(watchers: WatcherSet[FakeWatcher]) -> None:
    watchers.reconcile({"team-a", "team-b"})
    team_b = watchers.running["team-b"]
    result = watchers.reconcile({"team-a"})
    assert result == ReconcileResult(stopped=frozenset({"team-b"}))
    assert team_b.terminated == 1
    assert not team_b.alive
    assert set(watchers.running) == {"team-a"}


def test_dead_watchers_are_replaced_by_new_started_ones(
    factory: Factory, watchers: WatcherSet[FakeWatcher]
) -> None:
    watchers.reconcile({"team-a", "team-b"})
    dead = watchers.running["team-a"]
    dead.alive = False
    result = watchers.reconcile({"team-a", "team-b"})
    assert result == ReconcileResult(restarted=frozenset({"team-a"}))
    assert dead.terminated == 1
    replacement = watchers.running["team-a"]
    assert replacement is not dead
    assert replacement.started == 1
    assert replacement.alive
    assert factory.namespaces() == ["team-a", "team-b", "team-a"]


def test_reconciling_the_same_desired_set_again_changes_nothing(
    factory: Factory, watchers: WatcherSet[FakeWatcher]
) -> None:
    watchers.reconcile({"team-a", "team-b"})
    before = dict(watchers.running)
    result = watchers.reconcile({"team-b", "team-a"})
    assert result == ReconcileResult()
    assert len(factory.made) == 2
    assert watchers.running == before
    assert all(w.started == 1 and w.terminated == 0 for w in factory.made)


def test_empty_desired_set_stops_every_watcher(factory: Factory, watchers: WatcherSet[FakeWatcher]) -> None:
    watchers.reconcile({"team-a", "team-b"})
    result = watchers.reconcile(set())
    assert result.stopped == {"team-a", "team-b"}
    assert watchers.running == {}
    assert all(w.terminated == 1 for w in factory.made)


def test_running_dict_is_the_same_object_across_reconciles(watchers: WatcherSet[FakeWatcher]) -> None:
    running = watchers.running
    watchers.reconcile({"team-a"})
    watchers.reconcile({"team-b"})
    watchers.running["team-b"].alive = False
    watchers.reconcile({"team-b"})
    assert watchers.running is running
    assert set(running) == {"team-b"}


def test_start_stop_and_restart_happen_in_one_reconcile(
    factory: Factory, watchers: WatcherSet[FakeWatcher]
) -> None:
    watchers.reconcile({"team-a", "team-b"})
    old_a, old_b = watchers.running["team-a"], watchers.running["team-b"]
    old_b.alive = False
    result = watchers.reconcile({"team-b", "team-c"})
    assert result == ReconcileResult(
        started=frozenset({"team-c"}), restarted=frozenset({"team-b"}), stopped=frozenset({"team-a"})
    )
    assert old_a.terminated == 1
    assert old_b.terminated == 1
    assert set(watchers.running) == {"team-b", "team-c"}
    assert watchers.running["team-b"] is not old_b


def test_a_dead_watcher_that_is_no_longer_wanted_is_stopped_not_restarted(
    factory: Factory, watchers: WatcherSet[FakeWatcher]
) -> None:
    watchers.reconcile({"team-a"})
    watchers.running["team-a"].alive = False
    result = watchers.reconcile(set())
    assert result == ReconcileResult(stopped=frozenset({"team-a"}))
    assert len(factory.made) == 1


def test_a_watcher_that_failed_to_be_made_is_retried_on_the_next_reconcile() -> None:
    failing = {"team-a"}
    made: list[str] = []

    def factory(namespace: str) -> FakeWatcher:
        if namespace in failing:
            raise RuntimeError("cannot start watcher")
        made.append(namespace)
        return FakeWatcher(namespace)

    watchers: WatcherSet[FakeWatcher] = WatcherSet(factory)
    with pytest.raises(RuntimeError):
        watchers.reconcile({"team-a"})
    assert watchers.running == {}
    failing.clear()
    assert watchers.reconcile({"team-a"}).started == {"team-a"}
    assert set(watchers.running) == {"team-a"}


def test_stop_unwanted_stops_what_is_no_longer_desired_and_starts_nothing(
    factory: Factory, watchers: WatcherSet[FakeWatcher]
) -> None:
    watchers.reconcile({"team-a", "team-b"})
    team_a = watchers.running["team-a"]
    assert watchers.stop_unwanted({"team-b", "team-c"}) == frozenset({"team-a"})
    assert team_a.terminated == 1
    assert set(watchers.running) == {"team-b"}
    assert factory.namespaces() == ["team-a", "team-b"]  # team-c is left to reconcile


def test_stop_unwanted_does_not_wait_for_a_reconcile_in_progress(
    watchers: WatcherSet[FakeWatcher],
) -> None:
    watchers.reconcile({"team-a"})
    with watchers._lock:  # a reconcile starting a batch of watchers holds the set
        assert watchers.stop_unwanted(set()) == frozenset()
    assert watchers.running["team-a"].terminated == 0
    assert watchers.reconcile(set()).stopped == frozenset({"team-a"})


class CountingWatcher(FakeWatcher):
    checks = 0

    def is_alive(self) -> bool:
        CountingWatcher.checks += 1
        return self.alive


def test_health_check_asks_no_watcher_whether_it_is_alive_until_one_says_it_ended() -> None:
    """The scheduler runs the check on every loop: it must not cost O(watchers) per loop."""
    watchers = WatcherSet(CountingWatcher)
    desired = [f"ns-{i}" for i in range(1000)]
    watchers.reconcile(desired)
    CountingWatcher.checks = 0
    asked = 0

    def plan() -> list[str]:
        nonlocal asked
        asked += 1
        return desired

    for _ in range(100):
        assert watchers.check(plan) is None
    assert (CountingWatcher.checks, asked) == (0, 0)


def test_a_watcher_that_says_it_ended_is_restarted_by_the_next_health_check_even_while_still_alive() -> None:
    factory = Factory()
    watchers = WatcherSet(factory)
    watchers.reconcile(["team-a", "team-b"])
    first = watchers.running["team-a"]
    watchers.ended("team-a", first)  # its thread's last moments: is_alive() is still True

    result = watchers.check(lambda: ["team-a", "team-b"])

    assert result == ReconcileResult(restarted=frozenset({"team-a"}))
    assert watchers.running["team-a"] is not first
    assert watchers.check(lambda: ["team-a", "team-b"]) is None


def test_a_stopped_watcher_saying_it_ended_does_not_trigger_a_reconcile() -> None:
    factory = Factory()
    watchers = WatcherSet(factory)
    watchers.reconcile(["team-a", "team-b"])
    stopped = watchers.running["team-a"]
    watchers.reconcile(["team-b"])
    watchers.ended("team-a", stopped)

    assert watchers.check(lambda: ["team-b"]) is None
