"""The scheduler high-availability scenario's DAG: tasks that run until the test releases them.

Three team namespaces: ``in_team_a`` and ``in_team_b`` name theirs in ``executor_config``;
``in_hooked`` names none and is moved to ``ha-team-c`` by the deployment's ``pod_mutation_hook``
(``tests/harness/ha_scenario.py`` writes it into airflow_local_settings.py). Each task waits for
the Airflow Variable ``RELEASE_VARIABLE`` to exist, so its pod is surely still running when a
scheduler is killed and its pods are adopted; the wait has a deadline so that nothing hangs.

No retries: a task reset after its scheduler died would run a second try, with a second pod,
which is exactly what the test must be able to see.
"""

from __future__ import annotations

import os
import time

from airflow.sdk import Variable, dag, task
from kubernetes.client import models as k8s

DAG_ID = "ha_adoption"
RELEASE_VARIABLE = "ha_adoption_release"
MAP_WIDTH = 2
HOOKED_TASK = "in_hooked"
TEAM_NAMESPACES = {"in_team_a": "ha-team-a", "in_team_b": "ha-team-b", "in_hooked": "ha-team-c"}
"""Task id -> the namespace its pods land in (literals: the harness reads them without importing)."""
WAIT_LIMIT_SECONDS = 240.0


def wait_for_release(index: int) -> str:
    deadline = time.monotonic() + WAIT_LIMIT_SECONDS
    while Variable.get(RELEASE_VARIABLE, default=None) is None:
        if time.monotonic() > deadline:
            raise RuntimeError(f"not released within {WAIT_LIMIT_SECONDS:.0f} s")
        time.sleep(1.0)
    where = os.environ.get("POD_NAMESPACE", "(not in a pod)")
    print(f"map index {index} ran in namespace {where}, pod {os.environ.get('POD_NAME', '-')}")
    return where


def in_namespace(namespace: str) -> dict[str, k8s.V1Pod]:
    return {"pod_override": k8s.V1Pod(metadata=k8s.V1ObjectMeta(namespace=namespace))}


@dag(dag_id=DAG_ID, schedule=None, catchup=False, default_args={"retries": 0}, tags=["kubernetes", "ha"])
def ha_adoption() -> None:
    @task(task_id="in_team_a", executor_config=in_namespace(TEAM_NAMESPACES["in_team_a"]))
    def in_team_a(index: int) -> str:
        return wait_for_release(index)

    @task(task_id="in_team_b", executor_config=in_namespace(TEAM_NAMESPACES["in_team_b"]))
    def in_team_b(index: int) -> str:
        return wait_for_release(index)

    @task(task_id=HOOKED_TASK)
    def in_hooked(index: int) -> str:
        return wait_for_release(index)

    for work in (in_team_a, in_team_b, in_hooked):
        work.expand(index=list(range(MAP_WIDTH)))


ha_adoption()
