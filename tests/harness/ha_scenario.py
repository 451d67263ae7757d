"""Scheduler high availability: one of two schedulers is killed while its tasks run; the other adopts them.

Set-up: the control plane (kube-apiserver, etcd, kube-controller-manager), a throwaway PostgreSQL
server (:mod:`tests.harness.postgres`: Airflow supports several schedulers only on a database with
row locks), the scheduler's ServiceAccount ``airflow/scheduler`` and three team namespaces, labelled and
granted, and Airflow (:mod:`tests.harness.airflow_stack`) with two scheduler processes whose
metrics go to one StatsD listener under a prefix each. ``tests/e2e/dags/ha_adoption.py`` runs two
mapped tasks per team namespace; those of ``in_hooked`` name no namespace and land in theirs only
through the deployment's ``pod_mutation_hook`` (written into airflow_local_settings.py here).

:meth:`HaScenario.run`: ``scheduler-1`` alone launches every task's pod (so the pods it leaves
behind span all three namespaces, whatever the two would have shared between them), then
``scheduler-2`` starts and discovers the same namespaces; ``scheduler-1``'s process group is
SIGKILLed while the pods run and one team namespace loses its label at once. ``scheduler-2`` must
find the dead scheduler's job through ``[scheduler] scheduler_health_check_threshold``, adopt
its pods at its next ``orphaned_tasks_check_interval`` (relabelling them ``airflow-worker=<its
job id>``), watch them to the end, delete them, and settle its discovery: the unlabelled
namespace drained and no longer watched. Tasks wait on an Airflow Variable, so each pod is
surely still running when the adoption happens.
"""

from __future__ import annotations

import collections
import contextlib
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy
from kubernetes import client

from kubeharness import NAMESPACE_READ_RULES, Cluster, Identity, wait_until
from kubeharness.processes import tail
from tests.harness.airflow_stack import REPO_ROOT, STACK_POLL, AirflowStack, TaskInstance
from tests.harness.churn_soak import dag_constants
from tests.harness.executor_pods import POD_RULES
from tests.harness.kubelet import EXECUTOR_POD_SELECTOR, Kubelet, PodWatch
from tests.harness.postgres import Postgres
from tests.harness.scenario import Scenario
from tests.harness.soak_observers import PodRecorder, SeenPod
from tests.harness.statsd_listener import StatsdListener

DAG_FILE = REPO_ROOT / "tests" / "e2e" / "dags" / "ha_adoption.py"
HOME_NAMESPACE = "airflow"
SCHEDULER_ACCOUNT = "scheduler"
SELECTOR_LABEL = "airflow-enabled"
VICTIM, SURVIVOR = "scheduler-1", "scheduler-2"
UNLABELLED = "ha-team-b"
"""The team namespace that loses its label when the victim dies."""
HEALTH_CHECK_THRESHOLD = 10
"""[scheduler] scheduler_health_check_threshold: a scheduler silent this long is dead. Small, to keep
the test short; not smaller, so that a live scheduler slowed down by a busy 2-core machine is not
declared dead and robbed of its tasks."""
ORPHAN_CHECK_INTERVAL = 2.0
"""[scheduler] orphaned_tasks_check_interval: how often each scheduler looks for dead ones."""
METRIC_STEM = "kubernetes_namespace_discovery."
FINISHED_LINE = re.compile(
    r"TaskInstance Finished: dag_id=(\S+), task_id=(\S+), run_id=(\S+), map_index=(-?\d+),"
)

LOCAL_SETTINGS = '''\
"""The deployment's pod mutation hook: pods of task {task_id!r} go to namespace {namespace!r}."""


def pod_mutation_hook(pod):
    if (pod.metadata.labels or {{}}).get("task_id") == {task_id!r}:
        pod.metadata.namespace = {namespace!r}
'''

Progress = Callable[[str], None]


def statsd_prefix(scheduler: str) -> str:
    return "airflow_" + scheduler.replace("-", "_")


def wait_converged(
    statsd: StatsdListener, scheduler: str, *, permitted: int, watched: int, timeout: float
) -> dict[str, float]:
    """Wait until a scheduler's own gauges say its discovery has settled, and return them: so many
    namespaces permitted and watched, none draining or pending, every loop healthy."""
    stem = f"{statsd_prefix(scheduler)}.{METRIC_STEM}"
    wanted = {
        "namespaces.permitted": permitted,
        "namespaces.draining": 0,
        "namespaces.pending": 0,
        "watchers_running": watched,
        "loops.failing": 0,
    }
    gauges: dict[str, float] = {}

    def settled() -> dict[str, float] | None:
        nonlocal gauges
        gauges = statsd.gauges(stem)
        return gauges if all(gauges.get(name) == value for name, value in wanted.items()) else None

    try:
        return wait_until(settled, f"{scheduler}'s discovery to settle", timeout=timeout, interval=1.0)
    except TimeoutError as err:
        raise TimeoutError(f"{err}: wanted {wanted}, last gauges {gauges}") from None


class WorkerLabels:
    """Every ``airflow-worker`` label value each executor pod had, in order, from an admin watch:
    adoption is the patch of that label to the adopting scheduler's job id."""

    def __init__(self, cluster: Cluster) -> None:
        self._api_client = cluster.admin_api_client()
        self._lock = threading.Lock()
        self.history: dict[str, list[str]] = collections.defaultdict(list)
        self.names: dict[str, str] = {}
        self._watch = PodWatch(self._api_client, self._record, label_selector=EXECUTOR_POD_SELECTOR)

    def start(self) -> WorkerLabels:
        self._watch.start_and_sync()
        return self

    def stop(self) -> None:
        self._watch.stop()
        self._api_client.close()

    def _record(self, kind: str, pod: client.V1Pod) -> None:
        meta = pod.metadata
        worker = (meta.labels or {}).get("airflow-worker", "")
        with self._lock:
            self.names[meta.uid] = f"{meta.namespace}/{meta.name}"
            seen = self.history[meta.uid]
            if not seen or seen[-1] != worker:
                seen.append(worker)

    def snapshot(self) -> dict[str, list[str]]:
        """Pod (namespace/name) -> the worker label values it had."""
        with self._lock:
            return {self.names[uid]: list(values) for uid, values in self.history.items()}


@dataclass
class HaResult:
    victim_job: int
    survivor_job: int
    killed_at: float
    adopted_after: float
    """Seconds from the SIGKILL until every pod carried the survivor's job id."""
    labels: dict[str, list[str]]
    pods: list[SeenPod]
    task_instances: dict[str, TaskInstance]
    finished_reports: dict[tuple[str, str], list[str]]
    """(task_id, map_index) -> the schedulers whose log reports the task instance finished."""
    pods_left: list[str]
    survivor_gauges: dict[str, float]
    victim_gauges_before: dict[str, float]
    survivor_log: str


class HaScenario(Scenario):
    """Runs the scenario; a context manager that stops everything it started."""

    def __init__(self, cluster: Cluster, workdir: Path, progress: Progress = lambda message: None) -> None:
        super().__init__()
        self.cluster = cluster
        self.workdir = Path(workdir)
        self.progress = progress
        constants = dag_constants(DAG_FILE)
        self.dag_id: str = constants["DAG_ID"]
        self.release_variable: str = constants["RELEASE_VARIABLE"]
        self.map_width: int = constants["MAP_WIDTH"]
        self.namespace_of: dict[str, str] = constants["TEAM_NAMESPACES"]
        self.hooked_task: str = constants["HOOKED_TASK"]
        self.run_id = "ha__1"
        self.stack: AirflowStack | None = None
        self.statsd: StatsdListener | None = None
        self.postgres: Postgres | None = None
        self.kubelet: Kubelet | None = None
        self.pods: PodRecorder | None = None
        self.labels: WorkerLabels | None = None

    # set-up --------------------------------------------------------------------------------------

    def start(self) -> None:
        """Everything up to ``scheduler-1`` running and the DAG parsed, from the main thread."""
        cluster = self.cluster
        self.progress("starting the control plane and PostgreSQL")
        cluster.start()
        self._exit.callback(cluster.stop)
        self.postgres = self._exit.enter_context(Postgres())
        cluster.create_namespace(HOME_NAMESPACE)
        scheduler = cluster.service_account_client(
            HOME_NAMESPACE,
            SCHEDULER_ACCOUNT,
            cluster_rules=NAMESPACE_READ_RULES,
            namespace_rules={HOME_NAMESPACE: POD_RULES},
        )
        self._exit.callback(scheduler.api_client.close)
        for namespace in self.namespace_of.values():
            cluster.create_namespace(namespace, {SELECTOR_LABEL: "true"})
            cluster.grant(scheduler, namespace, POD_RULES)
        self.statsd = StatsdListener()
        self._exit.callback(self.statsd.close)
        self.stack = stack = self._stack(scheduler)
        stack.write_home()
        (stack.home / "config").mkdir(exist_ok=True)
        (stack.home / "config" / "airflow_local_settings.py").write_text(
            LOCAL_SETTINGS.format(task_id=self.hooked_task, namespace=self.namespace_of[self.hooked_task])
        )
        self.progress(f"AIRFLOW_HOME {stack.home}: migrating PostgreSQL, starting {VICTIM} alone")
        stack.migrate()
        self._exit.callback(stack.stop)
        stack.start(("api-server", VICTIM, "dag-processor"))
        stack.wait_until_serving()
        stack.wait_for_components()
        stack.wait_for_dag(self.dag_id)
        stack.unpause(self.dag_id)
        self.pods = PodRecorder(cluster)
        self._exit.callback(self.pods.stop)
        self.pods.start()
        self.labels = WorkerLabels(cluster)
        self._exit.callback(self.labels.stop)
        self.labels.start()
        self.kubelet = Kubelet(
            cluster,
            base_env=stack.task_env(),
            log_dir=self.workdir / "pods",
            python=stack.python,
            max_pods=len(self.namespace_of) * self.map_width,
        )
        self._exit.callback(self.kubelet.stop)
        self.kubelet.start()

    def _stack(self, scheduler: Identity) -> AirflowStack:
        assert self.postgres is not None
        assert self.statsd is not None
        return AirflowStack(
            home=self.workdir / "airflow-home",
            dags_folder=DAG_FILE.parent,
            kubeconfig=scheduler.kubeconfig_path,
            namespace=HOME_NAMESPACE,
            schedulers=2,
            config={
                "database": {"sql_alchemy_conn": self.postgres.url},
                "scheduler": {
                    "scheduler_health_check_threshold": str(HEALTH_CHECK_THRESHOLD),
                    "orphaned_tasks_check_interval": str(ORPHAN_CHECK_INTERVAL),
                },
                "metrics": self.statsd.airflow_config(),
            },
            component_env={
                name: {"AIRFLOW__METRICS__STATSD_PREFIX": statsd_prefix(name)} for name in (VICTIM, SURVIVOR)
            },
        )

    # the scenario --------------------------------------------------------------------------------

    def run(self, timeout: float = 120.0) -> HaResult:
        stack, labels = self._stack_started(), self._labels()
        tasks = len(self.namespace_of) * self.map_width
        stack.trigger(self.dag_id, self.run_id)
        wait_until(
            lambda: self._running_pods() >= tasks,
            f"{VICTIM} to launch all {tasks} pods and the kubelet to run them",
            timeout=timeout,
            check=stack.check_alive,
            interval=STACK_POLL,
        )
        victim_job = self._only_worker(labels.snapshot())
        self.progress(
            f"{tasks} pods running, all launched by {VICTIM} (job {victim_job}); starting {SURVIVOR}"
        )
        stack.start((SURVIVOR,))
        everything = len(self.namespace_of) + 1  # the home namespace too
        victim_gauges = self._converged(VICTIM, permitted=everything, watched=everything, timeout=timeout)
        self._converged(SURVIVOR, permitted=everything, watched=everything, timeout=timeout)
        survivor_job = self._survivor_job(victim_job)

        self.progress(f"{SURVIVOR} (job {survivor_job}) discovered the namespaces; SIGKILL to {VICTIM}")
        stack.kill(VICTIM)
        killed_at = time.monotonic()
        self.cluster.label_namespace(UNLABELLED, {SELECTOR_LABEL: None})
        wait_until(
            lambda: all(seen[-1] == str(survivor_job) for seen in labels.snapshot().values()),
            f"{SURVIVOR} to adopt every pod",
            timeout=timeout,
            check=stack.check_alive,
            interval=STACK_POLL,
        )
        adopted_after = time.monotonic() - killed_at
        self.progress(
            f"{SURVIVOR} adopted every pod {adopted_after:.1f} s after the kill; releasing the tasks"
        )

        stack.http.post("/variables", json={"key": self.release_variable, "value": "go"}).raise_for_status()
        task_ids = list(self.namespace_of)
        tis = self._wait_for_mapped(task_ids, timeout)
        stack.wait_for_dag_run(self.dag_id, self.run_id, timeout=timeout)
        left = self._wait_until_no_pod_is_left(timeout)
        # The task sets its own state; the executor's event for it is processed a loop later, and
        # a row another process holds locked is skipped until the next loop.
        wait_until(
            lambda: len(self._finished_reports()) >= tasks,
            "every task's executor event to be processed",
            timeout=timeout,
            check=stack.check_alive,
            interval=STACK_POLL,
        )
        # Drained: the unlabelled namespace's tasks are done, so it is neither used nor watched.
        survivor_gauges = self._converged(
            SURVIVOR, permitted=everything - 1, watched=everything - 1, timeout=timeout
        )
        assert self.pods is not None
        assert self.kubelet is not None
        return HaResult(
            victim_job=victim_job,
            survivor_job=survivor_job,
            killed_at=killed_at,
            adopted_after=adopted_after,
            labels=labels.snapshot(),
            pods=self.pods.pods(also_ran=self.kubelet.runs()),
            task_instances=tis,
            finished_reports=self._finished_reports(),
            pods_left=left,
            survivor_gauges=survivor_gauges,
            victim_gauges_before=victim_gauges,
            survivor_log=stack.log_path(SURVIVOR).read_text(errors="replace"),
        )

    def _running_pods(self) -> int:
        assert self.kubelet is not None
        return sum(1 for run in self.kubelet.runs() if run.started_at is not None and not run.done)

    @staticmethod
    def _only_worker(snapshot: dict[str, list[str]]) -> int:
        workers = {values[-1] for values in snapshot.values()}
        if len(workers) != 1:
            raise AssertionError(f"pods launched by more than one scheduler job: {snapshot}")
        return int(workers.pop())

    def _survivor_job(self, victim_job: int) -> int:
        """The other running SchedulerJob in the metadata database."""
        assert self.postgres is not None
        engine = sqlalchemy.create_engine(self.postgres.url)
        try:

            def other() -> int | None:
                with engine.connect() as connection:
                    ids = connection.execute(
                        sqlalchemy.text(
                            "SELECT id FROM job WHERE job_type = 'SchedulerJob' AND state = 'running'"
                        )
                    ).scalars()
                    return next((int(job) for job in ids if int(job) != victim_job), None)

            return wait_until(other, f"{SURVIVOR}'s job in the database", timeout=60, interval=STACK_POLL)
        finally:
            engine.dispose()

    def _converged(self, scheduler: str, *, permitted: int, watched: int, timeout: float) -> dict[str, float]:
        assert self.statsd is not None
        return wait_converged(self.statsd, scheduler, permitted=permitted, watched=watched, timeout=timeout)

    def _wait_for_mapped(self, task_ids: list[str], timeout: float) -> dict[str, TaskInstance]:
        """Every map index of every task finished; keyed ``task_id[map_index]``."""
        stack = self._stack_started()
        expected = len(task_ids) * self.map_width

        def finished() -> dict[str, TaskInstance] | None:
            response = stack.http.get(
                f"/dags/{self.dag_id}/dagRuns/{self.run_id}/taskInstances", params={"limit": 100}
            )
            response.raise_for_status()
            answer = response.json()
            tis = {
                f"{ti['task_id']}[{ti['map_index']}]": TaskInstance(
                    ti["task_id"], ti["state"], int(ti["try_number"])
                )
                for ti in answer["task_instances"]
            }
            done = len(tis) == expected and all(ti.state in ("success", "failed") for ti in tis.values())
            return tis if done else None

        return wait_until(
            finished,
            "every mapped task to finish",
            timeout=timeout,
            check=stack.check_alive,
            interval=STACK_POLL,
        )

    def _wait_until_no_pod_is_left(self, timeout: float) -> list[str]:
        core = client.CoreV1Api(self.cluster.admin_api_client())
        left: list[str] = []

        def none_left() -> bool:
            nonlocal left
            pods = core.list_pod_for_all_namespaces(label_selector=EXECUTOR_POD_SELECTOR).items
            left = [f"{pod.metadata.namespace}/{pod.metadata.name}" for pod in pods]
            return not left

        try:
            with contextlib.suppress(TimeoutError):
                wait_until(
                    none_left, "every executor pod to be deleted", timeout=timeout, interval=STACK_POLL
                )
        finally:
            core.api_client.close()
        return left

    def _finished_reports(self) -> dict[tuple[str, str], list[str]]:
        stack = self._stack_started()
        reports: dict[tuple[str, str], list[str]] = collections.defaultdict(list)
        for name in stack.scheduler_names:
            for match in FINISHED_LINE.finditer(stack.log_path(name).read_text(errors="replace")):
                dag_id, task_id, run_id, map_index = match.groups()
                if dag_id == self.dag_id and run_id == self.run_id:
                    reports[(task_id, map_index)].append(name)
        return dict(reports)

    # helpers -------------------------------------------------------------------------------------

    def _stack_started(self) -> AirflowStack:
        if self.stack is None:
            raise RuntimeError("start() first")
        return self.stack

    def _labels(self) -> WorkerLabels:
        if self.labels is None:
            raise RuntimeError("start() first")
        return self.labels

    def logs(self, lines: int = 60) -> str:
        """Where the logs are and the schedulers' last lines, for a failure report."""
        if self.stack is None:
            return "(Airflow not started)"
        parts = [f"logs: {self.stack.log_dir}"]
        for name in self.stack.scheduler_names:
            parts.append(f"--- last lines of {name}:\n{tail(self.stack.log_path(name), lines)}")
        return "\n".join(parts)


def describe(result: HaResult) -> dict[str, Any]:
    """The result's numbers, for the test's output."""
    return {
        "victim job": result.victim_job,
        "survivor job": result.survivor_job,
        "adopted after (s)": round(result.adopted_after, 1),
        "pods": len(result.pods),
        "survivor gauges": result.survivor_gauges,
    }
