"""Discovery metrics reach Airflow's Stats as gauges and as counter deltas."""

from __future__ import annotations

import logging
from collections import Counter, deque
from types import SimpleNamespace
from typing import Any

import pytest

from airflow_provider_nsdiscovery.cleanup import PodCleanupJob
from airflow_provider_nsdiscovery.discovery.contracts import DiscoveryCounters
from airflow_provider_nsdiscovery.discovery.status import NamespaceStatus, State
from airflow_provider_nsdiscovery.discovery.table import StateTable
from airflow_provider_nsdiscovery.executors import metrics
from airflow_provider_nsdiscovery.loops import LoopHealth

NAMESPACES = f"{metrics.PREFIX}.namespaces"
LOOPS = f"{metrics.PREFIX}.loops"


class RecordingStats:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str, Any, dict[str, str] | None]] = []

    def gauge(self, name: str, value: float, tags: dict[str, str] | None = None) -> None:
        self.calls.append(("gauge", name, value, tags))

    def incr(self, name: str, count: int = 1, tags: dict[str, str] | None = None) -> None:
        self.calls.append(("incr", name, count, tags))

    def timing(self, name: str, value: Any, tags: dict[str, str] | None = None) -> None:
        self.calls.append(("timing", name, value.total_seconds(), tags))

    def gauges(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], Any]:
        """The last value of every gauge, keyed by name and tags."""
        return {(n, tuple(sorted((t or {}).items()))): v for kind, n, v, t in self.calls if kind == "gauge"}

    def incrs(self, metric: str) -> list[tuple[str, Any, dict[str, str] | None]]:
        """Each increment of ``metric``: the name after it (the tag value, for plain StatsD), count, tags."""
        stem = f"{metrics.PREFIX}.{metric}"
        return [
            (n.removeprefix(stem), c, t)
            for kind, n, c, t in self.calls
            if kind == "incr" and (n == stem or n.startswith(f"{stem}."))
        ]


@pytest.fixture
def stats(monkeypatch: pytest.MonkeyPatch) -> RecordingStats:
    recording = RecordingStats()
    monkeypatch.setattr(metrics, "Stats", recording)
    return recording


def ok(name: str) -> LoopHealth:
    return LoopHealth(name, alive=True)


def failing(name: str, failures: int = 1) -> LoopHealth:
    return LoopHealth(name, alive=True, failing_since=1.0, failures=failures, last_error="ApiException: 503")


def _discovery(loops: list[LoopHealth] | None = None) -> SimpleNamespace:
    table = StateTable()
    table.put(NamespaceStatus("a", State.PERMITTED, "r"))
    table.put(NamespaceStatus("b", State.FORBIDDEN, "r"))
    table.put(NamespaceStatus("c", State.DRAINING, "r", tasks=2))
    counters = DiscoveryCounters(
        requests=Counter({"selfsubjectrulesreviews": 3}),
        refusals=Counter({State.FORBIDDEN: 2}),
        validation_hits=3,
        validation_misses=1,
    )
    health = [ok("nsd-namespace-watch"), ok("nsd-reconcile-0")] if loops is None else loops
    return SimpleNamespace(
        table=table, counters=counters, discovery_latencies=deque([0.05]), health=lambda: list(health)
    )


def _scheduler(
    watchers: list[LoopHealth] | None = None,
    cleanup_health: LoopHealth | None = None,
    left_behind: int = 0,
) -> SimpleNamespace:
    watcher_health = [ok("watcher-a"), ok("watcher-c")] if watchers is None else watchers
    pending = frozenset(PodCleanupJob("delete", "b", f"pod-{i}") for i in range(left_behind))
    return SimpleNamespace(
        kube_watchers={loop.name: object() for loop in watcher_health},
        watcher_health=lambda: list(watcher_health),
        cleanup=SimpleNamespace(pending=pending, health=cleanup_health),
    )


def test_gauges_describe_the_state_table_watchers_and_pods_left_behind(stats: RecordingStats) -> None:
    metrics.DiscoveryMetrics().emit(_discovery(), _scheduler(left_behind=3))  # type: ignore[arg-type]

    gauges = stats.gauges()
    assert gauges[(f"{NAMESPACES}.permitted", (("state", "permitted"),))] == 1
    assert gauges[(f"{NAMESPACES}.forbidden", (("state", "forbidden"),))] == 1
    assert gauges[(f"{NAMESPACES}.draining", (("state", "draining"),))] == 1
    assert gauges[(f"{metrics.PREFIX}.watchers_running", ())] == 2
    assert gauges[(f"{metrics.PREFIX}.pods_left_behind", ())] == 3
    assert gauges[(f"{metrics.PREFIX}.validation_cache_hit_ratio", ())] == 0.75


def test_every_state_gets_a_namespaces_gauge_even_when_no_namespace_is_in_it(stats: RecordingStats) -> None:
    metrics.DiscoveryMetrics().emit(_discovery(), _scheduler())  # type: ignore[arg-type]

    per_state = {t["state"]: v for kind, n, v, t in stats.calls if n.startswith(f"{NAMESPACES}.") and t}
    assert set(per_state) == {state.value for state in State}
    names = [n for kind, n, v, t in stats.calls if n.startswith(f"{NAMESPACES}.")]
    assert sorted(names) == sorted(
        f"{NAMESPACES}.{state.value}" for state in State
    )  # plain StatsD tells them apart
    assert per_state["absent"] == 0
    assert stats.gauges()[(f"{metrics.PREFIX}.pods_left_behind", ())] == 0


def test_validation_hit_ratio_is_not_sent_before_any_validation(stats: RecordingStats) -> None:
    discovery = _discovery()
    discovery.counters.validation_hits = discovery.counters.validation_misses = 0
    metrics.DiscoveryMetrics().emit(discovery, _scheduler())  # type: ignore[arg-type]

    assert not [n for kind, n, v, t in stats.calls if n.endswith(".validation_cache_hit_ratio")]


def test_loops_gauge_counts_healthy_and_failing_loops_of_discovery_watchers_and_cleanup(
    stats: RecordingStats,
) -> None:
    discovery = _discovery([ok("nsd-namespace-watch"), failing("nsd-reconcile-0")])
    stopped = LoopHealth("nsd-pod-cleanup", alive=False)
    scheduler = _scheduler([ok("watcher-a"), failing("watcher-c")], cleanup_health=stopped)
    metrics.DiscoveryMetrics().emit(discovery, scheduler)  # type: ignore[arg-type]

    gauges = stats.gauges()
    assert gauges[(f"{LOOPS}.ok", (("health", "ok"),))] == 2
    assert gauges[(f"{LOOPS}.failing", (("health", "failing"),))] == 3


def test_loops_gauge_counts_the_executor_s_own_loops_too(stats: RecordingStats) -> None:
    refusal_logs = failing("nsd-refusal-logs")
    metrics.DiscoveryMetrics().emit(_discovery(), _scheduler(), loops=[refusal_logs])  # type: ignore[arg-type]

    gauges = stats.gauges()
    assert gauges[(f"{LOOPS}.ok", (("health", "ok"),))] == 4
    assert gauges[(f"{LOOPS}.failing", (("health", "failing"),))] == 1


def test_loops_gauge_leaves_out_a_cleanup_loop_that_was_never_started(stats: RecordingStats) -> None:
    metrics.DiscoveryMetrics().emit(_discovery(), _scheduler(cleanup_health=None))  # type: ignore[arg-type]

    gauges = stats.gauges()
    assert gauges[(f"{LOOPS}.ok", (("health", "ok"),))] == 4
    assert gauges[(f"{LOOPS}.failing", (("health", "failing"),))] == 0


def test_failing_loops_are_logged_once_while_they_keep_failing_and_recovery_once(
    stats: RecordingStats, caplog: pytest.LogCaptureFixture
) -> None:
    loops = [ok("nsd-namespace-watch"), failing("nsd-reconcile-0", failures=1)]
    discovery = _discovery(loops)
    emitter = metrics.DiscoveryMetrics(every=0)
    caplog.set_level(logging.INFO, logger=metrics.log.name)

    emitter.emit(discovery, _scheduler())  # type: ignore[arg-type]
    loops[1] = failing("nsd-reconcile-0", failures=7)  # still failing, with a different text
    emitter.emit(discovery, _scheduler())  # type: ignore[arg-type]
    loops[1] = ok("nsd-reconcile-0")
    emitter.emit(discovery, _scheduler())  # type: ignore[arg-type]
    emitter.emit(discovery, _scheduler())  # type: ignore[arg-type]

    records = [(r.levelno, r.getMessage()) for r in caplog.records if r.name == metrics.log.name]
    assert records == [
        (
            logging.WARNING,
            "discovery loops not healthy: nsd-reconcile-0: failing (1 in a row, last: ApiException: 503)",
        ),
        (logging.INFO, "all 4 discovery loops are healthy"),
    ]


def test_counters_are_sent_as_tagged_deltas_and_latencies_once(stats: RecordingStats) -> None:
    discovery = _discovery()
    emitter = metrics.DiscoveryMetrics(every=0)
    emitter.emit(discovery, _scheduler())  # type: ignore[arg-type]
    discovery.counters.refusals[State.FORBIDDEN] += 1
    discovery.counters.refusals[State.NOT_SELECTED] += 4
    discovery.counters.retries += 2
    emitter.emit(discovery, _scheduler())  # type: ignore[arg-type]

    assert stats.incrs("refusals") == [
        (".forbidden", 2, {"reason": "forbidden"}),
        (".forbidden", 1, {"reason": "forbidden"}),
        (".not-selected", 4, {"reason": "not-selected"}),
    ]
    assert stats.incrs("api_requests") == [
        (".selfsubjectrulesreviews", 3, {"request": "selfsubjectrulesreviews"})
    ]
    assert stats.incrs("reconcile_retries") == [("", 2, None)]
    assert [v for kind, n, v, t in stats.calls if kind == "timing"] == [0.05]
    assert not discovery.discovery_latencies


def test_emitting_on_every_scheduler_loop_reads_the_namespaces_once_per_interval(
    stats: RecordingStats,
) -> None:
    """Reading every namespace and watcher is O(namespaces): not on each loop, which launches tasks."""
    discovery = _discovery()
    reads = 0
    snapshot = discovery.table.snapshot

    def counted() -> Any:
        nonlocal reads
        reads += 1
        return snapshot()

    discovery.table.snapshot = counted
    now = [100.0]
    emitter = metrics.DiscoveryMetrics(clock=lambda: now[0], every=5.0)
    for _ in range(50):
        emitter.emit(discovery, _scheduler())  # type: ignore[arg-type]
        now[0] += 0.01
    assert reads == 1
    now[0] += 5.0
    emitter.emit(discovery, _scheduler())  # type: ignore[arg-type]
    assert reads == 2
