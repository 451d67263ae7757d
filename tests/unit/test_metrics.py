"""Discovery metrics reach Airflow's Stats as gauges and as counter deltas."""

from __future__ import annotations

from collections import Counter, deque
from types import SimpleNamespace
from typing import Any

import pytest

from airflow_provider_nsdiscovery.discovery.state import NamespaceStatus, State, StateTable
from airflow_provider_nsdiscovery.executors import metrics


class RecordingStats:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str, Any, dict[str, str] | None]] = []

    def gauge(self, name: str, value: float, tags: dict[str, str] | None = None) -> None:
        self.calls.append(("gauge", name, value, tags))

    def incr(self, name: str, count: int = 1, tags: dict[str, str] | None = None) -> None:
        self.calls.append(("incr", name, count, tags))

    def timing(self, name: str, value: Any, tags: dict[str, str] | None = None) -> None:
        self.calls.append(("timing", name, value.total_seconds(), tags))


@pytest.fixture
def stats(monkeypatch: pytest.MonkeyPatch) -> RecordingStats:
    recording = RecordingStats()
    monkeypatch.setattr(metrics, "Stats", recording)
    return recording


def _discovery() -> SimpleNamespace:
    table = StateTable()
    table.put(NamespaceStatus("a", State.PERMITTED, "r"))
    table.put(NamespaceStatus("b", State.FORBIDDEN, "r"))
    counters: Counter[str] = Counter(
        {
            "api: selfsubjectrulesreviews": 3,
            "validation cache hit": 3,
            "validation cache miss": 1,
            "refused: forbidden": 2,
        }
    )
    return SimpleNamespace(table=table, counters=counters, discovery_latencies=deque([0.05]))


def test_gauges_describe_the_state_table_and_watchers(stats: RecordingStats) -> None:
    metrics.DiscoveryMetrics().emit(_discovery(), watchers_running=4)  # type: ignore[arg-type]

    gauges = {(n, (t or {}).get("state")): v for kind, n, v, t in stats.calls if kind == "gauge"}
    assert gauges[(f"{metrics.PREFIX}.permitted_namespaces", None)] == 1
    assert gauges[(f"{metrics.PREFIX}.namespaces", "forbidden")] == 1
    assert gauges[(f"{metrics.PREFIX}.watchers_running", None)] == 4
    assert gauges[(f"{metrics.PREFIX}.validation_cache_hit_ratio", None)] == 0.75


def test_counters_are_sent_as_deltas_and_latencies_once(stats: RecordingStats) -> None:
    discovery = _discovery()
    emitter = metrics.DiscoveryMetrics()
    emitter.emit(discovery, 1)  # type: ignore[arg-type]
    discovery.counters["refused: forbidden"] += 1
    emitter.emit(discovery, 1)  # type: ignore[arg-type]

    refusals = [c for kind, n, c, t in stats.calls if kind == "incr" and n.endswith(".refusals")]
    reviews = [c for kind, n, c, t in stats.calls if kind == "incr" and n.endswith(".api_requests")]
    timings = [v for kind, n, v, t in stats.calls if kind == "timing"]
    assert refusals == [2, 1]
    assert reviews == [3]
    assert timings == [0.05]
