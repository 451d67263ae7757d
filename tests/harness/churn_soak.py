"""A churn soak: a real Airflow scheduler with this executor while namespaces, RBAC and the API server churn.

Set-up: kube-apiserver + etcd, the scheduler's ServiceAccount ``airflow/scheduler`` (namespaces
readable cluster-wide, pods in its home namespace), four team namespaces labelled and granted,
Airflow's api-server, scheduler and dag-processor (:mod:`tests.harness.airflow_stack`) with
``delete_worker_pods`` and ``delete_worker_pods_on_failure`` on (every finished pod is the
executor's to delete), and a kubelet stand-in running task pods as local processes.

:meth:`ChurnSoak.run` then, for ``duration`` seconds, triggers ``tests/e2e/dags/churn_soak.py``
again and again (whenever fewer than two runs are active, so a slow machine does not pile up a
backlog) and applies a churn action at random (seeded RNG) every few seconds: label or unlabel a
team namespace, remove or restore its RoleBinding, delete it and create it again, and restart
the API server at evenly spread points. Meanwhile :mod:`tests.harness.soak_observers` sample the
scheduler's heartbeat and record every executor pod. Then everything is restored, one more run is
triggered (it must succeed in every namespace), and the soak waits for every task instance to
finish and every executor pod to be gone. The result is a :class:`SoakResult` of measured
numbers; what counts as a pass is :meth:`SoakResult.violations`, shared by
``tests/e2e/test_churn_soak.py`` (short, in the suite) and ``bench/soak.py`` (``make soak``, long).
"""

from __future__ import annotations

import ast
import collections
import contextlib
import random
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import urllib3
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from kubeharness import NAMESPACE_READ_RULES, Cluster, Identity, wait_until
from kubeharness.processes import tail
from tests.harness.airflow_stack import REPO_ROOT, TERMINAL_STATES, AirflowStack
from tests.harness.executor_pods import POD_RULES
from tests.harness.kubelet import EXECUTOR_POD_SELECTOR
from tests.harness.scenario import Scenario
from tests.harness.soak_observers import HeartbeatSampler, PatientKubelet, PodRecorder, SeenPod, scan_log
from tests.harness.soak_result import TRANSIENT_ERROR_MARKS, SoakResult

DAG_FILE = REPO_ROOT / "tests" / "e2e" / "dags" / "churn_soak.py"
SCHEDULER_ACCOUNT = "scheduler"
SELECTOR_LABEL = "airflow-enabled"
ACCESS_RECHECK_SECONDS = 5.0
"""The soak's ``access_recheck_interval``: a removed RoleBinding is noticed within the soak."""
FORBIDDEN_MEMORY_SECONDS = ACCESS_RECHECK_SECONDS * 1.1 + 2.0 + 2.0
"""How long the executor may still refuse a namespace as forbidden after its RoleBinding is back: one
re-check interval with its jitter, the 2 s a refusal is reused on the scheduler thread, 2 s of slack."""
UNSELECTED_MEMORY_SECONDS = 2.0 + 3.0
"""The same after a label is back: the namespace watch sees it at once; the 2 s reuse, 3 s of slack."""
TRANSIENT = (ApiException, urllib3.exceptions.HTTPError, OSError, TimeoutError)

Progress = Callable[[str], None]


@dataclass(frozen=True)
class DagLayout:
    """What the DAG file declares: its id, the namespaces its tasks go to, and their map width."""

    dag_id: str
    home: str
    teams: tuple[str, ...]
    map_width: int

    @property
    def namespaces(self) -> tuple[str, ...]:
        return (self.home, *self.teams)

    def namespace_of(self, task_id: str) -> str:
        """The DAG names each task ``in_<namespace, '-' as '_'>``."""
        return {f"in_{ns.replace('-', '_')}": ns for ns in self.namespaces}[task_id]


def dag_constants(path: Path) -> dict[str, Any]:
    """A DAG file's literal module-level constants, read without importing it (that would import
    Airflow here)."""
    values: dict[str, Any] = {}
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            with contextlib.suppress(ValueError):
                values[node.targets[0].id] = ast.literal_eval(node.value)
    return values


def read_layout(path: Path = DAG_FILE) -> DagLayout:
    """The DAG file's constants."""
    values = dag_constants(path)
    return DagLayout(
        values["DAG_ID"], values["HOME_NAMESPACE"], tuple(values["TEAM_NAMESPACES"]), values["MAP_WIDTH"]
    )


# ------------------------------------------------------------------------------------------------
# The soak


@dataclass
class Periods:
    """When something held (wall clock): closed periods, and the open one if it holds now."""

    since: float | None = None
    closed: list[tuple[float, float]] = field(default_factory=list)

    @property
    def now(self) -> bool:
        return self.since is not None

    def begin(self) -> None:
        """Called once the thing is in force (a grant() returns once RBAC honours it)."""
        self.since = self.since or time.time()

    def end(self, at: float | None = None) -> None:
        """Called before the thing starts to go, so that a period never outlasts it."""
        if self.since is not None:
            self.closed.append((self.since, at or time.time()))
        self.since = None

    def throughout(self, start: float, end: float) -> bool:
        periods = [*self.closed, (self.since, float("inf"))] if self.since is not None else self.closed
        return any(begin <= start and end <= until for begin, until in periods)


@dataclass
class Team:
    """A team namespace: whether it is labelled and granted now, and since when."""

    name: str
    label: Periods = field(default_factory=Periods)
    binding: Periods = field(default_factory=Periods)


class ChurnSoak(Scenario):
    """Runs the soak; a context manager that stops everything it started.

    ``cluster`` is a control plane that is not started yet; logs go under ``workdir``.
    ``airflow_config`` adds airflow.cfg options (e.g. debug logging while investigating).
    """

    def __init__(
        self,
        cluster: Cluster,
        workdir: Path,
        *,
        seed: int = 0,
        progress: Progress = lambda message: None,
        trigger_every: float = 8.0,
        max_active_runs: int = 2,
        act_every: tuple[float, float] = (2.0, 5.0),
        restart_apiserver_every: float = 50.0,
        settle_timeout: float = 300.0,
        orphan_timeout: float = 360.0,
        airflow_config: Mapping[str, Mapping[str, str]] | None = None,
    ) -> None:
        super().__init__()
        self.cluster = cluster
        self.workdir = Path(workdir)
        self.seed = seed
        self.rng = random.Random(seed)
        self.progress = progress
        self.trigger_every = trigger_every
        self.max_active_runs = max_active_runs
        self.act_every = act_every
        self.restart_apiserver_every = restart_apiserver_every
        self.settle_timeout = settle_timeout
        self.orphan_timeout = orphan_timeout
        self.airflow_config = {section: dict(options) for section, options in (airflow_config or {}).items()}
        self.layout = read_layout()
        self.teams = {name: Team(name) for name in self.layout.teams}
        self.run_ids: list[str] = []
        self.actions: collections.Counter[str] = collections.Counter()
        self.action_failures: list[str] = []
        self.timeline: list[str] = []
        self.scheduler: Identity | None = None
        self.stack: AirflowStack | None = None
        self.kubelet: PatientKubelet | None = None
        self.pods: PodRecorder | None = None
        self.heartbeat: HeartbeatSampler | None = None
        self._admin_client: client.ApiClient | None = None

    # set-up --------------------------------------------------------------------------------------

    def start(self) -> None:
        """Control plane, namespaces, Airflow, kubelet stand-in and observers, from the main thread
        (the processes it starts die with the thread that forked them)."""
        cluster = self.cluster
        self.progress("starting kube-apiserver + etcd")
        cluster.start()
        self._exit.callback(cluster.stop)
        home = self.layout.home
        cluster.create_namespace(home)
        self.scheduler = cluster.service_account_client(
            home, SCHEDULER_ACCOUNT, cluster_rules=NAMESPACE_READ_RULES, namespace_rules={home: POD_RULES}
        )
        self._exit.callback(self.scheduler.api_client.close)
        for team in self.teams.values():
            cluster.create_namespace(team.name, {SELECTOR_LABEL: "true"})
            team.label.begin()
            cluster.grant(self.scheduler, team.name, POD_RULES)
            team.binding.begin()
        config: dict[str, dict[str, str]] = {
            "kubernetes_executor": {"delete_worker_pods_on_failure": "True"},
            "kubernetes_namespace_discovery": {"access_recheck_interval": str(ACCESS_RECHECK_SECONDS)},
        }
        for section, options in self.airflow_config.items():
            config.setdefault(section, {}).update(options)
        self.stack = stack = AirflowStack(
            home=self.workdir / "airflow-home",
            dags_folder=DAG_FILE.parent,
            kubeconfig=self.scheduler.kubeconfig_path,
            namespace=home,
            config=config,
        )
        stack.write_home()
        self.progress(f"AIRFLOW_HOME {stack.home}: migrating, then starting Airflow")
        stack.migrate()
        self._exit.callback(stack.stop)
        stack.start()
        stack.wait_until_serving()
        stack.wait_for_components()
        stack.wait_for_dag(self.layout.dag_id)
        stack.unpause(self.layout.dag_id)
        self.pods = PodRecorder(cluster)
        self._exit.callback(self.pods.stop)
        self.pods.start()
        self.kubelet = PatientKubelet(
            cluster, base_env=stack.task_env(), log_dir=self.workdir / "pods", python=stack.python
        )
        self._exit.callback(self.kubelet.stop)
        self.kubelet.start()
        self.heartbeat = HeartbeatSampler(stack.home / "airflow.db")
        self._exit.callback(self.heartbeat.stop)
        self.heartbeat.start()
        self.progress("scheduler running, DAG parsed, kubelet stand-in and observers started")

    # the soak ------------------------------------------------------------------------------------

    def run(self, duration: float) -> SoakResult:
        """Churn for ``duration`` seconds, restore, let everything finish and measure."""
        stack = self._stack()
        began = time.monotonic()
        end = began + duration
        restarts = max(1, round(duration / self.restart_apiserver_every))
        restart_at = [began + duration * (i + 1) / (restarts + 1) for i in range(restarts)]
        next_trigger, next_action = began, began + self.rng.uniform(*self.act_every)
        self.progress(f"churning for {duration:.0f} s (seed {self.seed}, {restarts} API-server restarts)")
        while (now := time.monotonic()) < end:
            stack.check_alive()
            if now >= next_trigger:
                if self._active_runs() < self.max_active_runs:
                    self._trigger(f"soak_{len(self.run_ids):04d}")
                    next_trigger = now + self.trigger_every
                else:
                    next_trigger = now + 1.0
            if restart_at and now >= restart_at[0]:
                restart_at.pop(0)
                self._act("restart-apiserver", None, self._restart_apiserver)
            elif now >= next_action:
                self._random_action()
                next_action = time.monotonic() + self.rng.uniform(*self.act_every)
            time.sleep(max(0.0, min(next_trigger, next_action, end) - time.monotonic()))
        churn_seconds = time.monotonic() - began
        self.progress(f"churn over after {churn_seconds:.0f} s; restoring every label and RoleBinding")
        self._restore()
        # A binding restored after its namespace was found forbidden is seen at the next re-check.
        time.sleep(ACCESS_RECHECK_SECONDS * 1.5)
        final_run = self._trigger("soak_final")
        settling = time.monotonic()
        stuck = self._wait_until_every_task_finishes()
        settle_seconds = time.monotonic() - settling
        self.progress(f"every task finished {settle_seconds:.0f} s after the last trigger; waiting for pods")
        orphans, orphan_wait = self._wait_until_no_pod_is_left()
        return self._result(churn_seconds, began, final_run, stuck, settle_seconds, orphans, orphan_wait)

    def _trigger(self, run_id: str) -> str:
        self._stack().trigger(self.layout.dag_id, run_id)
        self.run_ids.append(run_id)
        return run_id

    def _active_runs(self) -> int:
        response = self._stack().http.get(
            f"/dags/{self.layout.dag_id}/dagRuns", params={"state": ["queued", "running"], "limit": 1}
        )
        response.raise_for_status()
        return int(response.json()["total_entries"])

    def _random_action(self) -> None:
        team = self.teams[self.rng.choice(sorted(self.teams))]
        kind = self.rng.choices(["label", "binding", "recreate"], weights=[4, 4, 1])[0]
        if kind == "label":
            name = "unlabel" if team.label.now else "label"
            self._act(name, team, lambda: self._set_label(team, not team.label.now))
        elif kind == "binding":
            name = "remove-rolebinding" if team.binding.now else "restore-rolebinding"
            self._act(name, team, lambda: self._set_binding(team, not team.binding.now))
        else:
            self._act("delete-and-recreate", team, lambda: self._recreate(team))

    def _act(self, name: str, team: Team | None, action: Callable[[], str | None]) -> None:
        """One churn step; a step the API refused is recorded and the team's state read again."""
        started, started_at = time.monotonic(), time.time()
        where = f" {team.name}" if team else ""
        try:
            skipped = action()
        except TRANSIENT as err:
            self.action_failures.append(f"{name}{where}: {err!r}"[:300])
            self.timeline.append(f"{_utc(started_at)} {name}{where} failed: {err!r}"[:300])
            self.actions[f"{name} (failed)"] += 1
            if team is not None:
                team.label.end(started_at)  # whatever it did, it may have begun with these
                team.binding.end(started_at)
                self._observe(team)
            return
        self.actions[f"{name} (skipped)" if skipped else name] += 1
        note = f" skipped: {skipped}" if skipped else ""
        took = time.monotonic() - started
        self.timeline.append(f"{_utc(started_at)} {name}{where}{note} ({took:.1f} s)")
        self.progress(f"  {name}{where}{note} ({took:.1f} s)")

    def _set_label(self, team: Team, labelled: bool) -> None:
        if not labelled:
            team.label.end()
        self.cluster.label_namespace(team.name, {SELECTOR_LABEL: "true" if labelled else None})
        if labelled:
            team.label.begin()

    def _set_binding(self, team: Team, bound: bool) -> None:
        if bound:
            self.cluster.grant(self._scheduler(), team.name, POD_RULES)  # returns once in force
            team.binding.begin()
        else:
            team.binding.end()
            self.cluster.revoke(self._scheduler(), team.name)

    def _recreate(self, team: Team) -> str | None:
        """Delete the namespace and create it again, labelled and granted.

        Only a namespace none of whose task pods still run: deleting it would kill them, and a
        task killed from outside carries no reason of the executor's. So the label goes first (no
        new pods), and if task pods are still there the deletion is skipped.
        """
        if team.label.now:
            self._set_label(team, False)
        time.sleep(2.0)  # a launch already past its namespace check may still create its pod

        def no_task_pods() -> bool:
            core = self._core()
            return not core.list_namespaced_pod(team.name, label_selector=EXECUTOR_POD_SELECTOR).items

        try:
            wait_until(no_task_pods, f"the task pods in {team.name} to finish", timeout=20.0, interval=1.0)
        except TimeoutError:
            return "task pods still there after 20 s"
        team.binding.end()
        self.cluster.delete_namespace(team.name)
        self.cluster.finish_namespace_deletion(team.name)  # the namespace controller's work
        self.cluster.create_namespace(team.name, {SELECTOR_LABEL: "true"})
        team.label.begin()
        self._set_binding(team, True)
        return None

    def _restart_apiserver(self) -> None:
        self.cluster.restart_apiserver(downtime=self.rng.uniform(0.5, 3.0))

    def _observe(self, team: Team) -> None:
        with contextlib.suppress(*TRANSIENT):
            namespace = self._core().read_namespace(team.name)
            if (namespace.metadata.labels or {}).get(SELECTOR_LABEL) == "true":
                team.label.begin()
            rbac = client.RbacAuthorizationV1Api(self._admin())
            if rbac.list_namespaced_role_binding(team.name).items:
                team.binding.begin()

    def _restore(self) -> None:
        """Every team namespace present, labelled and granted, retried while the API is unsettled."""
        for team in self.teams.values():

            def restored(team: Team = team) -> bool:
                try:
                    with contextlib.suppress(ApiException):
                        self.cluster.create_namespace(team.name)  # 409 when it exists
                    self._set_label(team, True)
                    self._set_binding(team, True)
                except TRANSIENT:
                    return False
                return True

            wait_until(restored, f"namespace {team.name} to be restored", timeout=120.0, interval=2.0)

    # after the churn -----------------------------------------------------------------------------

    def task_instances(self) -> list[dict[str, Any]]:
        """Every task instance of every run of the DAG, as the REST API gives them."""
        return self._pages(f"/dags/{self.layout.dag_id}/dagRuns/~/taskInstances", "task_instances", {})

    def _pages(self, path: str, key: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        while True:
            response = self._stack().http.get(path, params={**params, "limit": 100, "offset": len(found)})
            response.raise_for_status()
            page: list[dict[str, Any]] = response.json()[key]
            found.extend(page)
            if len(page) < 100:
                return found

    def _wait_until_every_task_finishes(self) -> list[str]:
        """Task instances still unfinished once ``settle_timeout`` has passed (none, if all is well)."""
        expected = len(self.run_ids) * len(self.layout.namespaces) * self.layout.map_width
        unfinished: list[str] = []

        def finished() -> bool:
            nonlocal unfinished
            tis = self.task_instances()
            unfinished = [_ti_name(ti) for ti in tis if ti["state"] not in TERMINAL_STATES]
            if len(tis) < expected:
                unfinished.append(f"only {len(tis)} of {expected} task instances exist")
            return not unfinished

        with contextlib.suppress(TimeoutError):
            wait_until(finished, "every task instance to finish", timeout=self.settle_timeout, interval=2.0)
        return unfinished

    def _wait_until_no_pod_is_left(self) -> tuple[list[str], float]:
        """Executor pods still there once ``orphan_timeout`` has passed, and how long it took."""
        started = time.monotonic()
        left: list[str] = []

        def none_left() -> bool:
            nonlocal left
            pods = self._core().list_pod_for_all_namespaces(label_selector=EXECUTOR_POD_SELECTOR).items
            left = [f"{p.metadata.namespace}/{p.metadata.name} ({p.status.phase})" for p in pods]
            return not left

        with contextlib.suppress(TimeoutError):
            wait_until(
                none_left, "every executor pod to be deleted", timeout=self.orphan_timeout, interval=2.0
            )
        return left, time.monotonic() - started

    def _result(
        self,
        churn_seconds: float,
        began: float,
        final_run: str,
        stuck: list[str],
        settle_seconds: float,
        orphans: list[str],
        orphan_wait: float,
    ) -> SoakResult:
        stack = self._stack()
        if self.heartbeat is None or self.pods is None or self.kubelet is None:
            raise RuntimeError("start() first")
        self.heartbeat.stop()
        gaps = sorted(self.heartbeat.gaps(), key=lambda gap: gap[1])
        tis = self.task_instances()
        pods = self.pods.pods(also_ran=self.kubelet.runs())
        log = scan_log(stack.log_path("scheduler"))
        failures = self._classify_failures(tis)
        return SoakResult(
            seed=self.seed,
            churn_seconds=churn_seconds,
            total_seconds=time.monotonic() - began,
            heartbeat_interval=float(stack.airflow_cfg()["scheduler"]["scheduler_heartbeat_sec"]),
            heartbeat_samples=len(self.heartbeat.ages),
            heartbeat_max_gap=gaps[-1][1] if gaps else 0.0,
            heartbeat_p99_gap=gaps[int(0.99 * (len(gaps) - 1))][1] if gaps else 0.0,
            heartbeat_worst_at=_utc(gaps[-1][0]) if gaps else "",
            heartbeat_max_age=max(self.heartbeat.ages, default=0.0),
            heartbeat_read_failures=self.heartbeat.read_failures,
            load_max=max(self.heartbeat.load, default=0.0),
            tracebacks=log.tracebacks,
            exception_lines=log.exception_lines,
            exception_in_thread=log.exception_in_thread,
            log_bytes=log.size,
            runs=len(self.run_ids),
            task_instances=len(tis),
            states=dict(collections.Counter(str(ti["state"]) for ti in tis)),
            stuck=stuck,
            settle_seconds=settle_seconds,
            failures_without_reason=failures["unexplained"],
            failed_by_transient_error=failures["transient"],
            false_refusals=failures["false"],
            final_run={_ti_name(ti): str(ti["state"]) for ti in tis if ti["dag_run_id"] == final_run},
            pods_created=len(pods),
            pods_by_namespace=dict(collections.Counter(pod.namespace for pod in pods)),
            duplicates=_duplicates(pods),
            orphans=orphans,
            orphan_wait_seconds=orphan_wait,
            actions=dict(self.actions),
            action_failures=self.action_failures,
            timeline=self.timeline,
            log_dir=str(stack.log_dir),
        )

    def _failure_reasons(self) -> dict[tuple[str, str, int, int], str]:
        """(run, task, map index, try) -> what the executor said when it failed that try.

        The scheduler records the executor's message as the Extra info of a "state mismatch"
        audit entry; the executor's own refusals start "namespace '<name>' is ...".
        """
        reasons: dict[tuple[str, str, int, int], str] = {}
        for entry in self._pages(
            "/eventLogs", "event_logs", {"dag_id": self.layout.dag_id, "event": "state mismatch"}
        ):
            extra = entry.get("extra") or ""
            if "Extra info: " in extra:
                key = (entry["run_id"], entry["task_id"], entry["map_index"], entry["try_number"])
                reasons[key] = extra.split("Extra info: ", 1)[1]
        return reasons

    def _classify_failures(self, tis: list[dict[str, Any]]) -> dict[str, list[str]]:
        """Sort the failed tries whose reason is wrong: none naming their namespace ("unexplained"),
        a transient API error ("transient"), or a refusal the namespace did not deserve ("false"):
        forbidden although its RoleBinding had been in force for a whole re-check, not selected
        although it had been labelled for seconds (the home namespace is never revoked nor needs a
        label), or the API server's bare 403, which the executor passes on only when its own
        re-check did not confirm the refusal."""
        reasons = self._failure_reasons()
        found: dict[str, list[str]] = {"unexplained": [], "transient": [], "false": []}
        for ti in tis:
            if ti["state"] != "failed":
                continue
            namespace = self.layout.namespace_of(ti["task_id"])
            reason = reasons.get((ti["dag_run_id"], ti["task_id"], ti["map_index"], ti["try_number"]), "")
            line = f"{_ti_name(ti)} at {ti['end_date']}: {reason or '(no reason)'}"[:400]
            if any(mark in reason for mark in TRANSIENT_ERROR_MARKS):
                found["transient"].append(line)
            elif reason.startswith("(403)"):
                found["false"].append(line)
            elif f"namespace '{namespace}'" not in reason:
                found["unexplained"].append(line)
            elif ti["end_date"] and self._undeserved(reason, namespace, ti["end_date"]):
                found["false"].append(line)
        return found

    def _undeserved(self, reason: str, namespace: str, end_date: str) -> bool:
        failed_at = datetime.fromisoformat(end_date).timestamp()
        team = self.teams.get(namespace)
        if "forbidden" in reason:
            return team is None or team.binding.throughout(failed_at - FORBIDDEN_MEMORY_SECONDS, failed_at)
        if "not selected" in reason:
            return team is None or team.label.throughout(failed_at - UNSELECTED_MEMORY_SECONDS, failed_at)
        return False

    # helpers -------------------------------------------------------------------------------------

    def _stack(self) -> AirflowStack:
        if self.stack is None:
            raise RuntimeError("start() first")
        return self.stack

    def _scheduler(self) -> Identity:
        if self.scheduler is None:
            raise RuntimeError("start() first")
        return self.scheduler

    def _admin(self) -> client.ApiClient:
        if self._admin_client is None:
            self._admin_client = self.cluster.admin_api_client()
            self._exit.callback(self._admin_client.close)
        return self._admin_client

    def _core(self) -> client.CoreV1Api:
        return client.CoreV1Api(self._admin())


def _utc(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%H:%M:%S.%f UTC")


def _ti_name(ti: dict[str, Any]) -> str:
    return f"{ti['dag_run_id']}/{ti['task_id']}[{ti['map_index']}] try {ti['try_number']} {ti['state']}"


def _duplicates(pods: list[SeenPod]) -> list[str]:
    by_key: dict[tuple[str, ...], list[SeenPod]] = collections.defaultdict(list)
    for pod in pods:
        by_key[pod.key].append(pod)
    return [
        f"{'/'.join(key)}: {', '.join(f'{p.namespace}/{p.name}' for p in same)}"
        for key, same in by_key.items()
        if len(same) > 1
    ]


@contextlib.contextmanager
def reported(soak: ChurnSoak, lines: int = 60) -> Iterator[None]:
    """On failure, say where the logs are and show the scheduler log's last lines."""
    try:
        yield
    except BaseException:
        if soak.stack is not None:
            print(f"--- logs: {soak.stack.log_dir}; last lines of the scheduler log:")
            print(tail(soak.stack.log_path("scheduler"), lines))
        raise
