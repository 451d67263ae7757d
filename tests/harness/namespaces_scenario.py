"""The end-to-end scenario shared by ``demo/run_demo.py`` and ``tests/e2e``: one DAG, four namespaces.

- ``airflow``: the executor's home namespace; the scheduler's ServiceAccount ``airflow/scheduler``
  lives here, may read namespaces cluster-wide and manage pods here.
- ``team-a``: labelled ``airflow-enabled=true``, pods granted: its task runs.
- ``team-b``: labelled, no RoleBinding: its task is refused (forbidden), no pod is created.
- ``team-c``: pods granted, no label: its task is refused (not selected), no pod is created;
  then the namespace is labelled while the scheduler keeps running and the task is re-run.

The DAG is ``example_dags/namespaces_demo.py``. Airflow runs as real processes
(:mod:`tests.harness.airflow_stack`), task pods as local processes (:mod:`tests.harness.kubelet`).
Every step reports progress through a callback, so the demo can narrate and the test can stay quiet.
"""

from __future__ import annotations

import re
import subprocess
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from kubernetes import client

from kubeharness import NAMESPACE_READ_RULES, Cluster, Identity, wait_until
from tests.harness.airflow_stack import REPO_ROOT, STACK_POLL, AirflowStack, TaskInstance
from tests.harness.executor_pods import POD_RULES
from tests.harness.kubelet import Kubelet, PodRun, PodWatch
from tests.harness.scenario import Scenario
from tests.harness.statsd_listener import StatsdListener

DAG_ID = "namespaces_demo"
DAGS_FOLDER = REPO_ROOT / "example_dags"
HOME_NAMESPACE = "airflow"
SCHEDULER_ACCOUNT = "scheduler"
SELECTOR_LABEL = {"airflow-enabled": "true"}
TASK_NAMESPACES = {"home": HOME_NAMESPACE, "team_a": "team-a", "team_b": "team-b", "team_c": "team-c"}
"""Task id -> the namespace its pod asks for (see the DAG's executor_config)."""

DISCOVERY_LINE = re.compile(r"namespace discovery \(.*?\) found: [a-z0-9, -]*")
"""What the executor logs at start: mode, selector and the namespaces it may use."""

Progress = Callable[[str], None]


@dataclass(frozen=True)
class AddedPod:
    namespace: str
    name: str
    resource_version: int
    seen_at: float


class PodEventLog:
    """Every pod ADDED in any namespace, from an admin watch, recorded as it happens.

    A final list of pods would miss pods that were created and deleted again; this keeps each
    pod's creation resourceVersion, which etcd orders, so "created before X" can be decided
    exactly by comparing with the resourceVersion X was written at.
    """

    def __init__(self, cluster: Cluster) -> None:
        self._api_client = cluster.admin_api_client()
        self._lock = threading.Lock()
        self._added: dict[str, AddedPod] = {}
        self._watch = PodWatch(self._api_client, self._record)

    def start(self) -> PodEventLog:
        self._watch.start_and_sync()
        return self

    def stop(self) -> None:
        self._watch.stop()
        self._api_client.close()

    def _record(self, kind: str, pod: client.V1Pod) -> None:
        if kind != "ADDED":
            return
        with self._lock:
            self._added.setdefault(
                pod.metadata.uid,
                AddedPod(
                    pod.metadata.namespace, pod.metadata.name, int(pod.metadata.resource_version), time.time()
                ),
            )

    def added(self, namespace: str) -> list[AddedPod]:
        with self._lock:
            return [pod for pod in self._added.values() if pod.namespace == namespace]


@dataclass
class Outcome:
    task_id: str
    namespace: str
    state: str | None
    try_number: int
    reason: str
    pod: PodRun | None = None


class NamespacesScenario(Scenario):
    """Runs the scenario step by step; a context manager that stops everything it started.

    ``cluster`` is a control plane that is not started yet. Logs (Airflow components, task pods)
    go under ``workdir``, which the caller owns.
    """

    def __init__(self, cluster: Cluster, workdir: Path, progress: Progress = lambda message: None) -> None:
        super().__init__()
        self.cluster = cluster
        self.workdir = Path(workdir)
        self.progress = progress
        self.scheduler: Identity | None = None
        self.stack: AirflowStack | None = None
        self.statsd: StatsdListener | None = None
        self.kubelet: Kubelet | None = None
        self.pod_events: PodEventLog | None = None
        self.run_id = f"demo__{time.strftime('%Y%m%dT%H%M%S')}"
        self.team_c_labelled_at: int | None = None
        """resourceVersion of the team-c namespace once it was labelled."""

    # lifecycle ---------------------------------------------------------------------------------

    def _on_exit(self, what: str, stop: Callable[[], None]) -> None:
        def timed() -> None:
            started = time.monotonic()
            stop()
            self.progress(f"stopped {what} ({time.monotonic() - started:.1f}s)")

        self._exit.callback(timed)

    def start(self) -> None:
        """Everything up to a scheduler that is running and a DAG that is parsed."""
        self.start_cluster()
        self.start_airflow()
        self.start_kubelet()

    # steps -------------------------------------------------------------------------------------

    def start_cluster(self) -> None:
        self.progress("starting kube-apiserver + etcd")
        self.cluster.start()
        self._on_exit("the control plane", self.cluster.stop)
        cluster = self.cluster
        self.progress(f"control plane up at {cluster.host}")

        cluster.create_namespace(HOME_NAMESPACE)
        self.scheduler = cluster.service_account_client(
            HOME_NAMESPACE,
            SCHEDULER_ACCOUNT,
            cluster_rules=NAMESPACE_READ_RULES,
            namespace_rules={HOME_NAMESPACE: POD_RULES},
        )
        self._exit.callback(self.scheduler.api_client.close)
        self.progress(
            f"namespace {HOME_NAMESPACE} (home): ServiceAccount {self.scheduler.username}, "
            "may read namespaces cluster-wide and manage pods here"
        )
        cluster.create_namespace("team-a", SELECTOR_LABEL)
        cluster.grant(self.scheduler, "team-a", POD_RULES)
        self.progress("namespace team-a: labelled airflow-enabled=true, scheduler may manage pods")
        cluster.create_namespace("team-b", SELECTOR_LABEL)
        self.progress("namespace team-b: labelled airflow-enabled=true, no RoleBinding for the scheduler")
        cluster.create_namespace("team-c")
        cluster.grant(self.scheduler, "team-c", POD_RULES)
        self.progress("namespace team-c: scheduler may manage pods, but not labelled")

    def start_airflow(self) -> None:
        if self.scheduler is None:
            raise RuntimeError("start_cluster() first")
        self.statsd = StatsdListener()
        self._on_exit("StatsD listener", self.statsd.close)
        self.stack = AirflowStack(
            home=self.workdir / "airflow-home",
            dags_folder=DAGS_FOLDER,
            kubeconfig=self.scheduler.kubeconfig_path,
            namespace=HOME_NAMESPACE,
            config={"metrics": self.statsd.airflow_config()},
        )
        stack = self.stack
        stack.write_home()
        self.progress(f"AIRFLOW_HOME {stack.home}; migrating the metadata database")
        stack.migrate()
        self.progress("starting airflow api-server, scheduler, dag-processor")
        self._on_exit("Airflow", stack.stop)  # first: stop() copes with a half-started stack
        stack.start()
        stack.wait_until_serving()
        self.progress(f"api-server serving at {stack.base_url}")
        stack.wait_for_components()
        discovered = self.discovery_report()
        self.progress(f"scheduler running; {discovered}")
        stack.wait_for_dag(DAG_ID)
        self.progress(f"DAG {DAG_ID} parsed from {DAGS_FOLDER}")

    def discovery_report(self, timeout: float = 60.0) -> str:
        """The executor's line saying which namespaces it found at start."""
        assert self.stack is not None
        log = self.stack.log_path("scheduler")

        def found() -> str | None:
            match = DISCOVERY_LINE.search(log.read_text(errors="replace"))
            return match.group(0).rstrip() if match else None

        return wait_until(
            found,
            "the executor's discovery line in the scheduler log",
            timeout=timeout,
            check=self.stack.check_alive,
            interval=STACK_POLL,
        )

    def start_kubelet(self) -> None:
        if self.stack is None:
            raise RuntimeError("start_airflow() first")
        # Registered for stopping before starting: both stop cleanly when half-started.
        self.pod_events = PodEventLog(self.cluster)
        self._exit.callback(self.pod_events.stop)
        self.pod_events.start()
        self.kubelet = Kubelet(
            self.cluster,
            base_env=self.stack.task_env(),
            log_dir=self.workdir / "pods",
            python=self.stack.python,
        )
        self._on_exit("the kubelet stand-in", self.kubelet.stop)
        self.kubelet.start()
        self.progress(
            f"kubelet stand-in running task pods as local processes (logs in {self.kubelet.log_dir})"
        )

    def run_dag(self, timeout: float = 300.0) -> dict[str, Outcome]:
        """Trigger the DAG and wait until all four tasks have finished."""
        stack = self._require_stack()
        stack.unpause(DAG_ID)
        stack.trigger(DAG_ID, self.run_id)
        self.progress(f"triggered {DAG_ID} run {self.run_id}")
        tis = stack.wait_for_tasks(
            DAG_ID, self.run_id, list(TASK_NAMESPACES), timeout=timeout, on_change=self._report_state
        )
        # Clearing a task while the scheduler is still closing the run would race with it.
        state = stack.wait_for_dag_run(DAG_ID, self.run_id)
        self.progress(f"run {self.run_id}: {state}")
        self._wait_for_pods(tis.values())
        return self.outcomes()

    def label_team_c_and_rerun(self, timeout: float = 300.0) -> Outcome:
        """Label team-c while the scheduler runs, clear team_c and wait for its second try."""
        stack = self._require_stack()
        labelled = self.cluster.label_namespace("team-c", SELECTOR_LABEL)
        self.team_c_labelled_at = int(labelled.metadata.resource_version)
        self.progress("labelled team-c airflow-enabled=true (scheduler not restarted); clearing team_c")
        before = stack.task_instances(DAG_ID, self.run_id)["team_c"].try_number
        stack.clear(DAG_ID, self.run_id, ["team_c"])
        tis = stack.wait_for_tasks(
            DAG_ID,
            self.run_id,
            ["team_c"],
            try_number=before + 1,
            timeout=timeout,
            on_change=self._report_state,
        )
        self._wait_for_pods([tis["team_c"]])
        return self.outcomes()["team_c"]

    # results -----------------------------------------------------------------------------------

    def outcomes(self) -> dict[str, Outcome]:
        stack = self._require_stack()
        tis = stack.task_instances(DAG_ID, self.run_id)
        return {task_id: self._outcome(tis[task_id]) for task_id in TASK_NAMESPACES if task_id in tis}

    def _outcome(self, ti: TaskInstance) -> Outcome:
        stack = self._require_stack()
        namespace = TASK_NAMESPACES[ti.task_id]
        pod = self.pod_of(ti.task_id, ti.try_number)
        if ti.state == "success":
            reason = f"ran in pod {pod.namespace}/{pod.name}" if pod is not None else "ran"
        else:
            refusal = stack.executor_failure_reason(DAG_ID, self.run_id, ti.task_id, ti.try_number)
            reason = refusal or (f"pod {pod.namespace}/{pod.name} exited {pod.exit_code}" if pod else "")
        return Outcome(ti.task_id, namespace, ti.state, ti.try_number, reason, pod)

    def _wait_for_pods(self, tis: Iterable[TaskInstance], timeout: float = 120.0) -> None:
        """A task is marked done by its own process, which then takes a few seconds to exit."""
        pods = [pod for ti in tis if (pod := self.pod_of(ti.task_id, ti.try_number)) is not None]
        wait_until(
            lambda: all(pod.done for pod in pods),
            "task pods' processes to exit",
            timeout=timeout,
            interval=STACK_POLL,
        )

    def pod_of(self, task_id: str, try_number: int) -> PodRun | None:
        """The pod the kubelet stand-in ran for a task's try (annotations set by the executor)."""
        if self.kubelet is None:
            return None
        for run in self.kubelet.runs():
            if run.annotations.get("task_id") == task_id and run.annotations.get("try_number") == str(
                try_number
            ):
                return run
        return None

    def namespaces_report(self) -> str | None:
        """``airflow kubernetes-namespaces list`` with the scheduler's configuration, if available.

        The command is registered through the provider's entry point, so it exists only where the
        package is installed (``make demo`` installs it); None otherwise or if it fails.
        """
        try:
            result = self._require_stack().cli("kubernetes-namespaces", "list")
        except subprocess.TimeoutExpired:
            return None
        return result.stdout.rstrip() if result.returncode == 0 and result.stdout.strip() else None

    def log_locations(self) -> dict[str, Path]:
        stack = self._require_stack()
        locations = {
            f"airflow {name}": stack.log_path(name) for name in ("api-server", "scheduler", "dag-processor")
        }
        locations["task logs (Airflow)"] = stack.log_dir / "tasks"
        if self.kubelet is not None:
            locations["task pods (stdout)"] = self.kubelet.log_dir
        return locations

    def _report_state(self, ti: TaskInstance) -> None:
        if ti.state is None:  # created, or just cleared: nothing has happened yet
            return
        self.progress(
            f"  {ti.task_id:<7} ({TASK_NAMESPACES[ti.task_id]}) try {ti.try_number}: {ti.state or 'none'}"
        )

    def _require_stack(self) -> AirflowStack:
        if self.stack is None:
            raise RuntimeError("start_airflow() first")
        return self.stack
