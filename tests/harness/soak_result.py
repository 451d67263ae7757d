"""What a churn soak measured (:class:`SoakResult`) and what counts as a pass (:class:`SoakBounds`).

Shared by ``tests/e2e/test_churn_soak.py``, which asserts one promise per test, and
``bench/soak.py`` (``make soak``), which prints every broken promise and exits 1.
"""

from __future__ import annotations

import collections
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field

from airflow_provider_nsdiscovery.discovery.controller import CHECK_TIMEOUT
from airflow_provider_nsdiscovery.executors.scheduler import CREATE_TIMEOUT

TRANSIENT_ERROR_MARKS = (
    "Max retries exceeded",
    "Connection refused",
    "Connection reset",
    "ProtocolError",
    "timed out",
    "RemoteDisconnected",
)
"""Words of a connection-level error, as a failure reason carries them."""


@dataclass
class SoakBounds:
    """The limits a soak must stay within.

    ``heartbeat_gap`` is the longest time allowed between two scheduler heartbeats. The log
    allowances grow with what the soak did, because the provider logs one traceback per failure
    streak of each loop (a namespace watch, a pod watcher), and each churn action or API-server
    restart starts such streaks; the storm this guards against was ~300 tracebacks a second.
    """

    heartbeat_gap: float
    tracebacks_base: int = 10
    tracebacks_per_action: int = 3
    tracebacks_per_restart: int = 12
    log_bytes_base: int = 1024 * 1024
    log_bytes_per_task: int = 16 * 1024
    """Airflow's own INFO logging is ~10 KB per task instance here (it prints each pod override)."""


@dataclass
class SoakResult:
    seed: int
    churn_seconds: float = 0.0
    total_seconds: float = 0.0
    heartbeat_interval: float = 0.0
    heartbeat_samples: int = 0
    heartbeat_max_gap: float = 0.0
    heartbeat_p99_gap: float = 0.0
    heartbeat_worst_at: str = ""
    heartbeat_max_age: float = 0.0
    heartbeat_read_failures: int = 0
    load_max: float = 0.0
    """The machine's highest 1-minute load average during the soak (2 cores here)."""
    tracebacks: int = 0
    exception_lines: int = 0
    exception_in_thread: int = 0
    log_bytes: int = 0
    runs: int = 0
    task_instances: int = 0
    states: dict[str, int] = field(default_factory=dict)
    stuck: list[str] = field(default_factory=list)
    settle_seconds: float = 0.0
    failures_without_reason: list[str] = field(default_factory=list)
    """Failed tries whose executor message does not name their namespace (nor a transient error)."""
    failed_by_transient_error: list[str] = field(default_factory=list)
    """Failed tries whose only reason is a connection-level error talking to the API server."""
    false_refusals: list[str] = field(default_factory=list)
    """Tries failed as "forbidden" although their namespace had been granted for a whole re-check, as
    "not selected" although it had been labelled for seconds, or by a bare 403 the executor's own
    re-check did not confirm."""
    final_run: dict[str, str] = field(default_factory=dict)
    pods_created: int = 0
    pods_by_namespace: dict[str, int] = field(default_factory=dict)
    duplicates: list[str] = field(default_factory=list)
    orphans: list[str] = field(default_factory=list)
    orphan_wait_seconds: float = 0.0
    actions: dict[str, int] = field(default_factory=dict)
    action_failures: list[str] = field(default_factory=list)
    timeline: list[str] = field(default_factory=list)
    """Each churn action with its UTC time, to line up with the scheduler log."""
    log_dir: str = ""

    @property
    def apiserver_restarts(self) -> int:
        return self.actions.get("restart-apiserver", 0)

    @property
    def churn_actions(self) -> int:
        return sum(count for name, count in self.actions.items() if not name.startswith("restart"))

    def traceback_bound(self, bounds: SoakBounds) -> int:
        return (
            bounds.tracebacks_base
            + bounds.tracebacks_per_action * self.churn_actions
            + bounds.tracebacks_per_restart * self.apiserver_restarts
        )

    def log_bytes_bound(self, bounds: SoakBounds) -> int:
        return bounds.log_bytes_base + bounds.log_bytes_per_task * self.task_instances

    def violations(self, bounds: SoakBounds) -> dict[str, str]:
        """Each broken promise by name; empty when the soak passed."""
        found: dict[str, str] = {}
        if self.heartbeat_samples == 0:
            found["heartbeat"] = "no heartbeat was read"
        elif self.heartbeat_max_gap >= bounds.heartbeat_gap:
            found["heartbeat"] = (
                f"{self.heartbeat_max_gap:.2f} s between two scheduler heartbeats "
                f"(ending {self.heartbeat_worst_at}); bound {bounds.heartbeat_gap:.2f} s"
            )
        limit = self.traceback_bound(bounds)
        if max(self.tracebacks, self.exception_lines) > limit:
            found["tracebacks"] = (
                f"{self.tracebacks} tracebacks and {self.exception_lines} 'Exception' lines in the "
                f"scheduler log (bound {limit} each)"
            )
        if self.log_bytes > (most := self.log_bytes_bound(bounds)):
            found["log size"] = f"the scheduler log is {self.log_bytes} bytes (bound {most})"
        if self.exception_in_thread:
            found["dead thread"] = f"{self.exception_in_thread} 'Exception in thread' in the scheduler log"
        if self.stuck:
            found["stuck"] = f"{len(self.stuck)} task instances never finished: {self.stuck[:10]}"
        if self.orphans:
            found["orphans"] = f"{len(self.orphans)} executor pods left behind: {self.orphans[:10]}"
        if self.duplicates:
            found["duplicates"] = f"more than one pod for one task try: {self.duplicates[:10]}"
        for name, failures in (
            ("reasons", self.failures_without_reason),
            ("transient errors", self.failed_by_transient_error),
            ("false refusals", self.false_refusals),
        ):
            if failures:
                found[name] = f"{len(failures)} failed tasks: {failures[:5]}"
        if not self.final_run or any(state != "success" for state in self.final_run.values()):
            found["recovery"] = f"the run after the churn did not succeed everywhere: {self.final_run}"
        return found

    def summary(self) -> str:
        def counts(values: Mapping[str, int]) -> str:
            return ", ".join(f"{name} {count}" for name, count in sorted(values.items()))

        return "\n".join(
            [
                f"seed {self.seed}: churn {self.churn_seconds:.0f} s, total {self.total_seconds:.0f} s",
                f"heartbeat (interval {self.heartbeat_interval:g} s): at most {self.heartbeat_max_gap:.2f} s "
                f"between two (p99 {self.heartbeat_p99_gap:.2f} s, worst ending {self.heartbeat_worst_at}); "
                f"age as the API shows it at most {self.heartbeat_max_age:.2f} s; "
                f"{self.heartbeat_samples} samples, {self.heartbeat_read_failures} unreadable; "
                f"machine load average up to {self.load_max:.1f}",
                f"scheduler log: {self.log_bytes} bytes, {self.tracebacks} tracebacks, "
                f"{self.exception_lines} 'Exception' lines, {self.exception_in_thread} 'Exception in thread'",
                f"runs {self.runs}, task instances {self.task_instances} ({counts(self.states)}); all "
                f"finished {self.settle_seconds:.0f} s after the last trigger; stuck {len(self.stuck)}",
                f"failed: without a reason naming their namespace {len(self.failures_without_reason)}, "
                f"by a transient API error {len(self.failed_by_transient_error)}, by a refusal the "
                f"namespace did not deserve {len(self.false_refusals)}",
                f"pods {self.pods_created} ({counts(self.pods_by_namespace)}); duplicates "
                f"{len(self.duplicates)}; left behind {len(self.orphans)} (all gone "
                f"{self.orphan_wait_seconds:.0f} s after the tasks)",
                f"churn actions: {counts(self.actions)}; failed actions {len(self.action_failures)}",
                f"run after the churn: {counts(collections.Counter(self.final_run.values()))}",
                f"logs: {self.log_dir}",
            ]
        )

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)


ON_DEMAND_CHECK_SECONDS = CHECK_TIMEOUT
"""The longest the executor's on-demand namespace check holds the scheduler loop, by design,
e.g. while the API server is down."""
CREATE_SECONDS = CREATE_TIMEOUT[1]
"""The longest one pod create holds the scheduler loop (a starting API server accepts the
connection but does not answer; ``CREATE_TIMEOUT`` in executors/scheduler.py). Connecting on
loopback is refused or accepted at once, so only the read timeout counts."""
SHARED_MACHINE_ALLOWANCE = 6.0
"""Measured here, not derived: on this 2-core machine, shared with other test runs (load average up
to 5), single gaps of 2.0-6.4 s between heartbeats were seen in soaks that otherwise passed, while
the p99 gap stayed at 1.6-2.0 s. The failure this guards against held the heartbeat 83 s."""


def default_bounds(heartbeat_interval: float) -> SoakBounds:
    """2 x the scheduler's heartbeat interval does not hold on this machine (see above); this does."""
    gap = 2 * heartbeat_interval + ON_DEMAND_CHECK_SECONDS + CREATE_SECONDS + SHARED_MACHINE_ALLOWANCE
    return SoakBounds(heartbeat_gap=gap)
