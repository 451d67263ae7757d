"""Discovery metrics through Airflow's Stats, emitted on the scheduler heartbeat.

Gauges describe the state table as it is now; counters are sent as deltas of the engine's running
totals, so a restart of the scheduler never makes a counter go backwards in StatsD.
"""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from typing import TYPE_CHECKING

from airflow.providers.common.compat.sdk import Stats

from airflow_provider_nsdiscovery.discovery.state import State

if TYPE_CHECKING:
    from airflow_provider_nsdiscovery.discovery.engine import NamespaceDiscovery

PREFIX = "kubernetes_namespace_discovery"


class DiscoveryMetrics:
    def __init__(self) -> None:
        self._sent: Counter[str] = Counter()

    def emit(self, discovery: NamespaceDiscovery, watchers_running: int) -> None:
        states = Counter(status.state for status in discovery.table.snapshot().values())
        for state in State:
            Stats.gauge(f"{PREFIX}.namespaces", states[state], tags={"state": state.value})
        Stats.gauge(f"{PREFIX}.permitted_namespaces", states[State.PERMITTED])
        Stats.gauge(f"{PREFIX}.watchers_running", watchers_running)
        counters = discovery.counters
        hits, misses = counters["validation cache hit"], counters["validation cache miss"]
        if hits + misses:
            Stats.gauge(f"{PREFIX}.validation_cache_hit_ratio", hits / (hits + misses))
        for name, total in list(counters.items()):
            delta = total - self._sent[name]
            if delta <= 0:
                continue
            self._sent[name] = total
            if name.startswith("api: "):
                Stats.incr(f"{PREFIX}.api_requests", delta, tags={"request": name.removeprefix("api: ")})
            elif name.startswith("refused: "):
                Stats.incr(f"{PREFIX}.refusals", delta, tags={"reason": name.removeprefix("refused: ")})
        while discovery.discovery_latencies:
            seconds = discovery.discovery_latencies.popleft()
            Stats.timing(f"{PREFIX}.discovery_latency", timedelta(seconds=seconds))
