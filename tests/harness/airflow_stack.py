"""A local Airflow 3 deployment with DynamicNamespaceKubernetesExecutor, for end-to-end tests and the demo.

It writes an AIRFLOW_HOME (SQLite unless ``config`` names another database, SimpleAuthManager
with a known password, the executor pointed at a control plane through the scheduler's
kubeconfig), migrates the database and runs
``airflow api-server``, ``airflow scheduler`` and ``airflow dag-processor`` as child processes
with their output in log files. With ``schedulers`` above one it runs that many ``airflow
scheduler`` processes (``scheduler-1``, ``scheduler-2``, ...), as Airflow's high availability
does: they share the metadata database, which must then be PostgreSQL or MySQL
(:mod:`tests.harness.postgres`). Settings are what ``airflow standalone`` would use, tuned to
react within a second or two and to stay small on a 2-core machine.

Task pods are run by :class:`tests.harness.kubelet.Kubelet`; :meth:`AirflowStack.task_env` is the
environment it gives them, so the task process finds this Airflow (its config, DAGs folder and
execution API) the way a real task image finds its deployment's.
"""

from __future__ import annotations

import configparser
import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import httpx

from kubeharness import die_with_parent as _die_with_parent
from kubeharness import wait_until
from kubeharness.processes import tail
from tests.harness.executor_pods import CONTAINER_NAME

REPO_ROOT = Path(__file__).resolve().parents[2]
EXECUTOR = "airflow_provider_nsdiscovery.executors.DynamicNamespaceKubernetesExecutor"
COMPONENTS = ("api-server", "scheduler", "dag-processor")
ADMIN_USER = "admin"
SIMPLE_AUTH_MANAGER = "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
STACK_POLL = 0.5
"""Seconds between polls of the stack's REST API, database or pods: its answers change in
seconds, and faster polling would only load the 2-core machines the tests run on."""
TERMINAL_STATES = frozenset({"success", "failed", "upstream_failed", "skipped", "removed"})

POD_TEMPLATE = f"""\
# The task pod's shape. POD_NAMESPACE/POD_NAME come from the downward API, as in any cluster.
apiVersion: v1
kind: Pod
metadata:
  name: placeholder
spec:
  containers:
    - name: {CONTAINER_NAME}
      image: apache/airflow:3.3.2
      env:
        - name: POD_NAMESPACE
          valueFrom:
            fieldRef:
              fieldPath: metadata.namespace
        - name: POD_NAME
          valueFrom:
            fieldRef:
              fieldPath: metadata.name
  restartPolicy: Never
"""

_T = TypeVar("_T")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class TaskInstance:
    task_id: str
    state: str | None
    try_number: int
    queued_when: datetime | None = None
    end_date: datetime | None = None


def _when(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None


@dataclass
class AirflowStack:
    """Airflow's processes around one AIRFLOW_HOME; a context manager that stops them all.

    ``kubeconfig`` is the scheduler identity's kubeconfig, ``namespace`` the executor's home
    namespace. ``config`` overrides or adds airflow.cfg options per section; ``component_env``
    adds environment variables to one component's processes (e.g. ``AIRFLOW__METRICS__...`` to
    tell two schedulers' metrics apart).
    """

    home: Path
    dags_folder: Path
    kubeconfig: Path
    namespace: str
    python: str = sys.executable
    config: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    schedulers: int = 1
    component_env: Mapping[str, Mapping[str, str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.home = Path(self.home)
        self.log_dir = self.home / "logs"
        self.password = secrets.token_urlsafe(16)
        self.base_url = f"http://127.0.0.1:{self.port}"
        self._processes: dict[str, subprocess.Popen[bytes]] = {}
        self._http: httpx.Client | None = None
        self._lock = threading.Lock()

    # configuration -----------------------------------------------------------------------------

    def airflow_cfg(self) -> configparser.ConfigParser:
        cfg = configparser.ConfigParser(interpolation=None)
        sections: dict[str, dict[str, str]] = {
            "core": {
                "executor": EXECUTOR,
                "dags_folder": str(self.dags_folder),
                "load_examples": "False",
                "execution_api_server_url": f"{self.base_url}/execution/",
                "auth_manager": SIMPLE_AUTH_MANAGER,
                "simple_auth_manager_users": f"{ADMIN_USER}:admin",
                "simple_auth_manager_passwords_file": str(self.home / "passwords.json"),
                "fernet_key": "",
                "parallelism": "8",
            },
            "database": {"sql_alchemy_conn": f"sqlite:///{self.home / 'airflow.db'}"},
            "logging": {"base_log_folder": str(self.log_dir / "tasks"), "logging_level": "INFO"},
            "api": {
                "host": "127.0.0.1",
                "port": str(self.port),
                "base_url": self.base_url,
                "workers": "1",
                "secret_key": secrets.token_urlsafe(32),
            },
            # Scheduler (which signs task tokens) and api-server (which checks them) must agree.
            "api_auth": {"jwt_secret": secrets.token_urlsafe(64)},
            "scheduler": {
                "scheduler_heartbeat_sec": "1",
                "job_heartbeat_sec": "2",
                "scheduler_idle_sleep_time": "0.5",
            },
            "dag_processor": {
                "parsing_processes": "1",
                "refresh_interval": "5",
                "min_file_process_interval": "60",
            },
            "kubernetes_executor": {
                "in_cluster": "False",
                "config_file": str(self.kubeconfig),
                "namespace": self.namespace,
                "pod_template_file": str(self.home / "pod_template.yaml"),
                "worker_container_repository": "apache/airflow",
                "worker_container_tag": "3.3.2",
                "worker_pods_creation_batch_size": "8",
                "delete_worker_pods": "True",
            },
        }
        for section, options in self.config.items():
            sections.setdefault(section, {}).update(options)
        cfg.read_dict(sections)
        return cfg

    def write_home(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        with (self.home / "airflow.cfg").open("w") as handle:
            self.airflow_cfg().write(handle)
        (self.home / "pod_template.yaml").write_text(POD_TEMPLATE)
        # SimpleAuthManager reads passwords from this file instead of generating them.
        (self.home / "passwords.json").write_text(f'{{"{ADMIN_USER}": "{self.password}"}}\n')

    def env(self) -> dict[str, str]:
        """Environment of every Airflow process, task processes included.

        Only this home's airflow.cfg counts: AIRFLOW_* variables of the calling process (a test
        session sets its own AIRFLOW_HOME) are dropped.
        """
        env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
        env["AIRFLOW_HOME"] = str(self.home)
        env["AIRFLOW_CONFIG"] = str(self.home / "airflow.cfg")
        # The package is importable from the repository even where it is not installed.
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))
        env["PATH"] = os.pathsep.join([str(Path(self.python).parent), env.get("PATH", os.defpath)])
        # Everything here talks to 127.0.0.1; a proxy from the environment must not get in between.
        no_proxy = ",".join(filter(None, ["127.0.0.1", "localhost", env.get("NO_PROXY", "")]))
        env["NO_PROXY"] = env["no_proxy"] = no_proxy
        env["PYTHONUNBUFFERED"] = "1"
        return env

    task_env = env

    # processes ---------------------------------------------------------------------------------

    def migrate(self, timeout: float = 300.0) -> None:
        log = self.log_dir / "db-migrate.log"
        with log.open("ab") as output:
            result = subprocess.run(
                [self.python, "-m", "airflow", "db", "migrate"],
                env=self.env(),
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                timeout=timeout,
                check=False,
            )
        if result.returncode != 0:
            raise RuntimeError(f"airflow db migrate failed ({result.returncode}):\n{tail(log)}")

    def cli(self, *args: str, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
        """Run ``airflow <args>`` against this home; output captured, exit code not checked."""
        return subprocess.run(
            [self.python, "-m", "airflow", *args],
            env=self.env(),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    @property
    def scheduler_names(self) -> tuple[str, ...]:
        """``scheduler`` alone, or ``scheduler-1`` ... ``scheduler-N``: names of processes and logs."""
        if self.schedulers == 1:
            return ("scheduler",)
        return tuple(f"scheduler-{index}" for index in range(1, self.schedulers + 1))

    def start(self, components: tuple[str, ...] = COMPONENTS) -> None:
        """Start the components (from the main thread: they die with the thread that forked them);
        ``scheduler`` stands for every scheduler process."""
        for component in components:
            for name in self.scheduler_names if component == "scheduler" else (component,):
                self._spawn(name)

    def _spawn(self, name: str) -> None:
        command = "scheduler" if name in self.scheduler_names else name
        env = {**self.env(), **self.component_env.get(name, {})}
        with (self.log_dir / f"{name}.log").open("ab") as output:
            self._processes[name] = subprocess.Popen(
                [self.python, "-m", "airflow", command],
                env=env,
                cwd=self.home,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # own group: stopping it stops its workers too; Ctrl-C goes to us
                preexec_fn=_die_with_parent,  # noqa: PLW1509 - only prctl(2)
            )

    def pid(self, name: str) -> int:
        return self._processes[name].pid

    def kill(self, name: str) -> None:
        """SIGKILL one component's whole process group, as a node failure or OOM kill would.

        It no longer counts as a component that must stay alive.
        """
        process = self._processes.pop(name)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()

    def log_path(self, name: str) -> Path:
        return self.log_dir / f"{name}.log"

    def check_alive(self) -> None:
        """Raise with the log's tail if a component exited."""
        for name, process in self._processes.items():
            if process.poll() is not None:
                raise RuntimeError(
                    f"airflow {name} exited with code {process.returncode}; last lines of "
                    f"{self.log_path(name)}:\n{tail(self.log_path(name))}"
                )

    def stop(self, grace: float = 15.0) -> None:
        """SIGTERM every component's process group, then SIGKILL what is left after ``grace``."""
        if self._http is not None:
            self._http.close()
            self._http = None
        processes = list(self._processes.values())
        for process in processes:
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        for process in processes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(max(0.0, deadline - time.monotonic()))
            # The group too: a worker may outlive its parent.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        self._processes.clear()

    def __enter__(self) -> AirflowStack:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # REST API ----------------------------------------------------------------------------------

    def wait_until_serving(self, timeout: float = 180.0) -> None:
        def healthy() -> bool:
            try:
                response = httpx.get(f"{self.base_url}/api/v2/monitor/health", timeout=5, trust_env=False)
            except httpx.HTTPError:
                return False
            return response.status_code == 200

        wait_until(
            healthy, "the api-server to answer", timeout=timeout, check=self.check_alive, interval=STACK_POLL
        )

    @property
    def http(self) -> httpx.Client:
        with self._lock:
            if self._http is None:
                token = httpx.post(
                    f"{self.base_url}/auth/token",
                    json={"username": ADMIN_USER, "password": self.password},
                    timeout=30,
                    trust_env=False,
                )
                token.raise_for_status()
                self._http = httpx.Client(
                    base_url=f"{self.base_url}/api/v2",
                    headers={"Authorization": f"Bearer {token.json()['access_token']}"},
                    timeout=30,
                    trust_env=False,
                )
            return self._http

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.http.request(method, path, **kwargs)
        if response.is_error:
            raise RuntimeError(f"{method} {path} -> {response.status_code}: {response.text}")
        return response.json()

    def health(self) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", "/monitor/health")
        return result

    def wait_for_components(self, timeout: float = 180.0) -> None:
        """The scheduler and dag-processor heartbeat (so the executor has started)."""

        def ready() -> bool:
            health = self.health()
            return all(
                (health.get(component) or {}).get("status") == "healthy"
                for component in ("scheduler", "dag_processor")
            )

        wait_until(
            ready,
            "the scheduler and dag-processor to report healthy",
            timeout=timeout,
            check=self.check_alive,
            interval=STACK_POLL,
        )

    def wait_for_dag(self, dag_id: str, timeout: float = 180.0) -> None:
        def parsed() -> bool:
            return bool(self.http.get(f"/dags/{dag_id}").status_code == 200)

        wait_until(
            parsed, f"DAG {dag_id} to be parsed", timeout=timeout, check=self.check_alive, interval=STACK_POLL
        )

    def unpause(self, dag_id: str) -> None:
        self._call("PATCH", f"/dags/{dag_id}", json={"is_paused": False})

    def trigger(self, dag_id: str, run_id: str) -> str:
        run = self._call("POST", f"/dags/{dag_id}/dagRuns", json={"dag_run_id": run_id, "logical_date": None})
        return str(run["dag_run_id"])

    def task_instances(self, dag_id: str, run_id: str) -> dict[str, TaskInstance]:
        answer = self._call("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances")
        return {
            ti["task_id"]: TaskInstance(
                ti["task_id"],
                ti["state"],
                int(ti["try_number"]),
                _when(ti.get("queued_when")),
                _when(ti.get("end_date")),
            )
            for ti in answer["task_instances"]
        }

    def dag_run_state(self, dag_id: str, run_id: str) -> str:
        return str(self._call("GET", f"/dags/{dag_id}/dagRuns/{run_id}")["state"])

    def wait_for_dag_run(self, dag_id: str, run_id: str, timeout: float = 120.0) -> str:
        """Wait until the scheduler has finished the run (success or failed) and return its state."""

        def finished() -> str | None:
            state = self.dag_run_state(dag_id, run_id)
            return state if state in ("success", "failed") else None

        return wait_until(
            finished, f"run {run_id} to finish", timeout=timeout, check=self.check_alive, interval=STACK_POLL
        )

    def wait_for_tasks(
        self,
        dag_id: str,
        run_id: str,
        task_ids: list[str],
        *,
        try_number: int | None = None,
        timeout: float = 300.0,
        on_change: Callable[[TaskInstance], None] = lambda ti: None,
    ) -> dict[str, TaskInstance]:
        """Wait until each task has finished (its ``try_number``, if given); report every state change."""
        seen: dict[str, tuple[str | None, int]] = {}

        def finished() -> dict[str, TaskInstance] | None:
            tis = self.task_instances(dag_id, run_id)
            for task_id in task_ids:
                ti = tis.get(task_id)
                if ti is not None and seen.get(task_id) != (ti.state, ti.try_number):
                    seen[task_id] = (ti.state, ti.try_number)
                    on_change(ti)
            done = all(
                task_id in tis
                and tis[task_id].state in TERMINAL_STATES
                and (try_number is None or tis[task_id].try_number >= try_number)
                for task_id in task_ids
            )
            return tis if done else None

        return wait_until(
            finished,
            f"tasks {', '.join(task_ids)} of {run_id} to finish",
            timeout=timeout,
            check=self.check_alive,
            interval=STACK_POLL,
        )

    def clear(self, dag_id: str, run_id: str, task_ids: list[str]) -> None:
        """Clear tasks of a run so the scheduler runs them again (the run is set running again)."""
        self._call(
            "POST",
            f"/dags/{dag_id}/clearTaskInstances",
            json={
                "dry_run": False,
                "dag_run_id": run_id,
                "task_ids": task_ids,
                "only_failed": False,
                "reset_dag_runs": True,
            },
        )

    def event_logs(self, dag_id: str, run_id: str, task_id: str, event: str) -> list[dict[str, Any]]:
        answer = self._call(
            "GET",
            "/eventLogs",
            params={"dag_id": dag_id, "run_id": run_id, "task_id": task_id, "event": event, "limit": 100},
        )
        logs: list[dict[str, Any]] = answer["event_logs"]
        return logs

    def executor_failure_reason(self, dag_id: str, run_id: str, task_id: str, try_number: int) -> str | None:
        """What the executor said when it failed a task instance without running it.

        The scheduler records the executor's ``info`` in the task's audit log as a "state mismatch"
        event ("... Extra info: <info>"), because the task was still queued when the executor
        reported it failed.
        """
        for entry in self.event_logs(dag_id, run_id, task_id, "state mismatch"):
            extra = entry.get("extra") or ""
            if entry.get("try_number") == try_number and "Extra info: " in extra:
                return str(extra.split("Extra info: ", 1)[1])
        return None
