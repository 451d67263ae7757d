"""The API server's load when several schedulers with this executor start together.

Each scheduler replica runs its own executor, so its own namespace discovery, access reviews and pod
watchers: N schedulers cost the API server N times one. This measures it rather than assuming it.
Set-up: the control plane, PostgreSQL, the scheduler's ServiceAccount (namespaces readable
cluster-wide, pods in its home namespace; no rights on RBAC objects, as with deploy/cluster-role.yaml
alone) and ``namespaces`` team namespaces, labelled and granted (:mod:`tests.harness.fleet`). Then
``schedulers`` ``airflow scheduler`` processes start at once (no api-server, dag-processor nor DAG:
only the executor's own work reaches the API server), and :meth:`LoadScenario.run` reads
kube-apiserver's ``/metrics`` before they start, once every scheduler's own gauges say its
discovery has settled, and after a further steady window.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubeharness import NAMESPACE_READ_RULES, Cluster, wait_until
from tests.harness.airflow_stack import STACK_POLL, AirflowStack
from tests.harness.apiserver_metrics import SCHEDULER_RESOURCES, ApiMetrics, request_delta
from tests.harness.executor_pods import POD_RULES
from tests.harness.fleet import team_namespaces
from tests.harness.ha_scenario import (
    HOME_NAMESPACE,
    METRIC_STEM,
    SCHEDULER_ACCOUNT,
    statsd_prefix,
    wait_converged,
)
from tests.harness.postgres import Postgres
from tests.harness.scenario import Scenario
from tests.harness.statsd_listener import StatsdListener

SELECTOR_LABEL = "airflow-enabled"
POD_WATCHES = "WATCH pods namespace"
"""The API server's name for open per-namespace pod watches (apiserver_longrunning_requests)."""
RBAC_RESOURCES = frozenset({"roles", "rolebindings", "clusterroles", "clusterrolebindings"})
"""Counted too: the executor tries to watch them (and is refused here) to see access changes."""


@dataclass
class LoadResult:
    namespaces: int
    schedulers: int
    converge_seconds: float
    """From starting the processes until every scheduler's discovery had settled."""
    start: Counter[str]
    """Requests served (``<verb> <resource>``) until then, all schedulers together."""
    steady_seconds: float
    steady: Counter[str]
    """Requests served in the steady window after that."""
    watches: Counter[str]
    """Long-running requests (watches) open once settled, minus those open before the start."""
    client_requests: dict[str, dict[str, float]]
    """Per scheduler: its executor's own ``api_requests.<kind>`` counters until the end."""
    gauges: dict[str, dict[str, float]]
    """Per scheduler: its discovery gauges once settled."""

    def per_scheduler(self, counts: Counter[str]) -> dict[str, float]:
        return {kind: count / self.schedulers for kind, count in sorted(counts.items())}

    def summary(self) -> str:
        lines = [
            f"{self.schedulers} schedulers, {self.namespaces} labelled namespaces: settled after "
            f"{self.converge_seconds:.1f} s",
            "start, per scheduler (API server's count / schedulers):",
            *(f"  {kind}: {count:g}" for kind, count in self.per_scheduler(self.start).items()),
            f"steady window of {self.steady_seconds:.0f} s, per scheduler:",
            *(f"  {kind}: {count:g}" for kind, count in self.per_scheduler(self.steady).items()),
            "watches open, per scheduler:",
            *(f"  {kind}: {count:g}" for kind, count in self.per_scheduler(self.watches).items()),
            "each executor's own count of its requests:",
            *(f"  {name}: {dict(sorted(counts.items()))}" for name, counts in self.client_requests.items()),
        ]
        return "\n".join(lines)


class LoadScenario(Scenario):
    """A context manager that stops everything it started."""

    def __init__(
        self, cluster: Cluster, workdir: Path, *, namespaces: int = 200, schedulers: int = 2
    ) -> None:
        super().__init__()
        self.cluster = cluster
        self.workdir = Path(workdir)
        self.namespaces = namespaces
        self.schedulers = schedulers
        self.stack: AirflowStack | None = None
        self.statsd: StatsdListener | None = None

    def start(self) -> None:
        """Everything but the schedulers, from the main thread."""
        cluster = self.cluster
        cluster.start()
        self._exit.callback(cluster.stop)
        postgres = self._exit.enter_context(Postgres())
        cluster.create_namespace(HOME_NAMESPACE)
        scheduler = cluster.service_account_client(
            HOME_NAMESPACE,
            SCHEDULER_ACCOUNT,
            cluster_rules=NAMESPACE_READ_RULES,
            namespace_rules={HOME_NAMESPACE: POD_RULES},
        )
        self._exit.callback(scheduler.api_client.close)
        team_namespaces(
            cluster, self.namespaces, "load", [scheduler], label=SELECTOR_LABEL, role="scheduler-pods"
        )
        self.statsd = StatsdListener()
        self._exit.callback(self.statsd.close)
        dags = self.workdir / "dags"
        dags.mkdir(parents=True, exist_ok=True)
        self.stack = stack = AirflowStack(
            home=self.workdir / "airflow-home",
            dags_folder=dags,
            kubeconfig=scheduler.kubeconfig_path,
            namespace=HOME_NAMESPACE,
            schedulers=self.schedulers,
            config={"database": {"sql_alchemy_conn": postgres.url}, "metrics": self.statsd.airflow_config()},
        )
        stack.component_env = {
            name: {"AIRFLOW__METRICS__STATSD_PREFIX": statsd_prefix(name)} for name in stack.scheduler_names
        }
        stack.write_home()
        stack.migrate()
        self._exit.callback(stack.stop)

    def run(self, *, steady_seconds: float = 30.0, timeout: float = 180.0) -> LoadResult:
        stack, statsd = self.stack, self.statsd
        if stack is None or statsd is None:
            raise RuntimeError("start() first")
        metrics = ApiMetrics(self.cluster, SCHEDULER_RESOURCES | RBAC_RESOURCES)
        before = metrics.scrape()
        started = time.monotonic()
        stack.start(("scheduler",))
        everything = self.namespaces + 1  # the home namespace too
        gauges = {}
        for name in stack.scheduler_names:
            gauges[name] = wait_converged(
                statsd, name, permitted=everything, watched=everything, timeout=timeout
            )
            stack.check_alive()
        # A watcher counts as running once its thread has started; its WATCH is open when the API
        # server says so, which on a loaded machine can be seconds later for 400 TLS connections.
        expected = self.schedulers * everything

        def pod_watches_open() -> dict[str, Any] | None:
            scrape = metrics.scrape()
            opened = scrape["longrunning"][POD_WATCHES] - before["longrunning"][POD_WATCHES]
            return scrape if opened >= expected else None

        settled = wait_until(
            pod_watches_open,
            f"{expected} pod watches open at the API server",
            timeout=timeout,
            interval=STACK_POLL,
            check=stack.check_alive,
        )
        converge_seconds = time.monotonic() - started
        time.sleep(steady_seconds)  # a measurement window, not a wait for something to happen
        stack.check_alive()
        after = metrics.scrape()
        watches = Counter(settled["longrunning"])
        watches.subtract(before["longrunning"])
        return LoadResult(
            namespaces=self.namespaces,
            schedulers=self.schedulers,
            converge_seconds=converge_seconds,
            start=request_delta(before, settled),
            steady_seconds=after["t"] - settled["t"],
            steady=request_delta(settled, after),
            watches=Counter({kind: count for kind, count in watches.items() if count}),
            client_requests={
                name: statsd.counters(f"{statsd_prefix(name)}.{METRIC_STEM}api_requests.")
                for name in stack.scheduler_names
            },
            gauges=gauges,
        )
