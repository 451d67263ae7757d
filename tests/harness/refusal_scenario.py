"""Refused tasks in a real Airflow 3: what a user sees of them, for tests/e2e/test_refusal_shown.py.

kube-apiserver + etcd, the scheduler's ServiceAccount ``airflow/scheduler`` (namespaces readable
cluster-wide, pods manageable in ``airflow`` only), ``team-b`` labelled ``airflow-enabled=true``
but not granted, and Airflow's api-server, scheduler and dag-processor running
``tests/e2e/refusal_dags/refused_tasks.py``, whose two tasks are refused before any pod is made.
No kubelet is needed: nothing is ever launched.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from kubeharness import NAMESPACE_READ_RULES, Cluster, Identity
from tests.harness.airflow_stack import REPO_ROOT, AirflowStack, TaskInstance
from tests.harness.executor_pods import POD_RULES
from tests.harness.scenario import Scenario

DAGS_FOLDER = REPO_ROOT / "tests" / "e2e" / "refusal_dags"
DAG_ID = "refused_tasks"
TASK_IDS = ("forbidden", "old_form")
HOME_NAMESPACE = "airflow"
FORBIDDEN_NAMESPACE = "team-b"
SELECTOR_LABEL = {"airflow-enabled": "true"}

Progress = Callable[[str], None]


class RefusalScenario(Scenario):
    """A context manager that stops everything it started, last first; logs go under ``workdir``."""

    def __init__(self, cluster: Cluster, workdir: Path, progress: Progress = lambda message: None) -> None:
        super().__init__()
        self.cluster = cluster
        self.workdir = Path(workdir)
        self.progress = progress
        self.scheduler: Identity | None = None
        self.stack: AirflowStack | None = None
        self.run_id = f"refused__{time.strftime('%Y%m%dT%H%M%S')}"

    def start(self) -> AirflowStack:
        self.cluster.start()
        self._exit.callback(self.cluster.stop)
        self.cluster.create_namespace(HOME_NAMESPACE)
        self.scheduler = self.cluster.service_account_client(
            HOME_NAMESPACE,
            "scheduler",
            cluster_rules=NAMESPACE_READ_RULES,
            namespace_rules={HOME_NAMESPACE: POD_RULES},
        )
        self._exit.callback(self.scheduler.api_client.close)
        self.cluster.create_namespace(FORBIDDEN_NAMESPACE, SELECTOR_LABEL)
        self.progress(f"control plane up; {FORBIDDEN_NAMESPACE} labelled, no RoleBinding for the scheduler")

        stack = AirflowStack(
            home=self.workdir / "airflow-home",
            dags_folder=DAGS_FOLDER,
            kubeconfig=self.scheduler.kubeconfig_path,
            namespace=HOME_NAMESPACE,
        )
        self.stack = stack
        stack.write_home()
        stack.migrate()
        self._exit.callback(stack.stop)
        stack.start()
        stack.wait_until_serving()
        stack.wait_for_components()
        stack.wait_for_dag(DAG_ID)
        self.progress(f"Airflow serving at {stack.base_url}, DAG {DAG_ID} parsed")
        return stack

    def run(self, timeout: float = 60.0) -> dict[str, TaskInstance]:
        """Trigger the DAG and return its task instances once both have failed."""
        stack = self._stack()
        stack.unpause(DAG_ID)
        stack.trigger(DAG_ID, self.run_id)
        tis = stack.wait_for_tasks(DAG_ID, self.run_id, list(TASK_IDS), timeout=timeout)
        self.progress(f"run {self.run_id}: " + ", ".join(f"{t.task_id} {t.state}" for t in tis.values()))
        return tis

    def _stack(self) -> AirflowStack:
        if self.stack is None:
            raise RuntimeError("start() first")
        return self.stack
