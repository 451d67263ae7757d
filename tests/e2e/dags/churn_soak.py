"""The churn soak's DAG: short mapped tasks spread over the home namespace and four team namespaces.

One mapped task per namespace: a task's pod goes where its ``executor_config`` pod_override says,
and Airflow takes ``executor_config`` from ``partial()`` only (it cannot vary per map index), so
each namespace gets its own task, expanded ``MAP_WIDTH`` times. ``tests/harness/churn_soak.py``
reads ``HOME_NAMESPACE``, ``TEAM_NAMESPACES`` and ``MAP_WIDTH`` from this file (without importing
it), creates those namespaces and triggers this DAG again and again while it churns their labels,
RoleBindings and the API server underneath the scheduler.

No retries: each task instance has exactly one try, so "one pod per try" and "every failure has a
reason" are checked try by try.
"""

from __future__ import annotations

import os
import time

from airflow.sdk import dag, task
from kubernetes.client import models as k8s

DAG_ID = "churn_soak"
HOME_NAMESPACE = "airflow"
TEAM_NAMESPACES = ("soak-1", "soak-2", "soak-3", "soak-4")
MAP_WIDTH = 2
TASK_SECONDS = 1.0


def task_id_for(namespace: str) -> str:
    return "in_" + namespace.replace("-", "_")


@dag(
    dag_id=DAG_ID,
    schedule=None,
    catchup=False,
    max_active_runs=64,
    default_args={"retries": 0},
    tags=["kubernetes", "namespaces", "soak"],
)
def churn_soak() -> None:
    for namespace in (HOME_NAMESPACE, *TEAM_NAMESPACES):

        @task(
            task_id=task_id_for(namespace),
            executor_config={"pod_override": k8s.V1Pod(metadata=k8s.V1ObjectMeta(namespace=namespace))},
        )
        def work(index: int) -> str:
            time.sleep(TASK_SECONDS)
            where = os.environ.get("POD_NAMESPACE", "(not in a pod)")
            print(f"map index {index} ran in namespace {where}, pod {os.environ.get('POD_NAME', '-')}")
            return where

        work.expand(index=list(range(MAP_WIDTH)))


churn_soak()
