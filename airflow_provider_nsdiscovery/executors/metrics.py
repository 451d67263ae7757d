"""Discovery metrics through Airflow's Stats, emitted on the scheduler heartbeat.

Gauges describe the state table and the loops as they are now; counters are sent as deltas of the
controller's running totals, so a restart of the scheduler never makes a counter go backwards.
A dimension's value is in the metric's name as well as in its tags, as in Airflow's own metrics:
plain StatsD (the Helm chart's default) drops tags, and one name sent with a value per state would
keep only the last.
"""

from __future__ import annotations

import logging
import re
import time
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING

from airflow.providers.common.compat.sdk import Stats

from airflow_provider_nsdiscovery.discovery.status import State

if TYPE_CHECKING:
    from airflow_provider_nsdiscovery.discovery.controller import NamespaceDiscovery
    from airflow_provider_nsdiscovery.executors.scheduler import DynamicNamespaceKubernetesScheduler
    from airflow_provider_nsdiscovery.loops import LoopHealth

log = logging.getLogger(__name__)

PREFIX = "kubernetes_namespace_discovery"
_UNSAFE = re.compile(r"[^a-zA-Z0-9_.-]")


def stat_name(metric: str, value: str = "") -> str:
    """``<prefix>.<metric>``, or ``<prefix>.<metric>.<value>`` with characters StatsD rejects replaced."""
    return f"{PREFIX}.{metric}.{_UNSAFE.sub('_', value)}" if value else f"{PREFIX}.{metric}"


EVERY = 5.0
"""Seconds between two emissions. The gauges read every namespace's status and every watcher's
health, O(namespaces); on each scheduler loop that was a per-task cost at thousands of namespaces.
StatsD flushes every 10 s by default, so a gauge set more often than that is overwritten unread."""


class DiscoveryMetrics:
    def __init__(self, clock: Callable[[], float] = time.monotonic, every: float = EVERY) -> None:
        self._sent: Counter[str] = Counter()
        self._unhealthy: frozenset[str] = frozenset()
        self._clock, self._every = clock, every
        self._last = float("-inf")

    def emit(
        self,
        discovery: NamespaceDiscovery,
        scheduler: DynamicNamespaceKubernetesScheduler,
        loops: Sequence[LoopHealth] = (),
    ) -> None:
        """``loops``: the executor's own supervised loops, beside discovery's and the scheduler's.

        Called on every scheduler loop; does its work at most once per ``every`` seconds.
        """
        now = self._clock()
        if now - self._last < self._every:
            return
        self._last = now
        states = Counter(status.state for status in discovery.table.snapshot().values())
        for state in State:
            Stats.gauge(stat_name("namespaces", state.value), states[state], tags={"state": state.value})
        Stats.gauge(stat_name("watchers_running"), len(scheduler.kube_watchers))
        Stats.gauge(stat_name("pods_left_behind"), len(scheduler.cleanup.pending))
        self._emit_loops(discovery, scheduler, loops)
        counters = discovery.counters
        hits, misses = counters.validation_hits, counters.validation_misses
        if hits + misses:
            Stats.gauge(stat_name("validation_cache_hit_ratio"), hits / (hits + misses))
        totals: dict[tuple[str, str], int] = {
            **{("api_requests", kind): n for kind, n in counters.requests.items()},
            **{("refusals", reason): n for reason, n in counters.refusals.items()},
            ("reconcile_retries", ""): counters.retries,
            ("foreign_pods_ignored", ""): counters.foreign_pods,
        }
        for (metric, tag), total in totals.items():
            key = f"{metric}:{tag}"
            delta = total - self._sent[key]
            if delta <= 0:
                continue
            self._sent[key] = total
            tags = {"request" if metric == "api_requests" else "reason": tag} if tag else None
            Stats.incr(stat_name(metric, tag), delta, tags=tags)
        while discovery.discovery_latencies:
            seconds = discovery.discovery_latencies.popleft()
            Stats.timing(stat_name("discovery_latency"), timedelta(seconds=seconds))

    def _emit_loops(
        self,
        discovery: NamespaceDiscovery,
        scheduler: DynamicNamespaceKubernetesScheduler,
        own: Sequence[LoopHealth],
    ) -> None:
        """Liveness of every supervised loop: a gauge, and a log line when the set of failing ones changes."""
        loops = [*discovery.health(), *scheduler.watcher_health(), *own]
        if scheduler.cleanup.health is not None:
            loops.append(scheduler.cleanup.health)
        unhealthy = frozenset(loop.describe() for loop in loops if not loop.healthy)
        Stats.gauge(stat_name("loops", "ok"), len(loops) - len(unhealthy), tags={"health": "ok"})
        Stats.gauge(stat_name("loops", "failing"), len(unhealthy), tags={"health": "failing"})
        names = frozenset(text.split(":", 1)[0] for text in unhealthy)
        if names != self._unhealthy:
            self._unhealthy = names
            if unhealthy:
                log.warning("discovery loops not healthy: %s", "; ".join(sorted(unhealthy)))
            else:
                log.info("all %d discovery loops are healthy", len(loops))
