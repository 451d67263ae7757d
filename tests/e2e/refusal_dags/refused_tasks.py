"""Two tasks the executor refuses before creating a pod, for tests/e2e/test_refusal_shown.py.

``forbidden`` asks for ``team-b``, a namespace that is labelled but where the scheduler may not
manage pods; ``old_form`` writes its executor_config in Airflow 1's form, which no executor reads.
No retries: each task has one try, whose log is the one checked.
"""

from __future__ import annotations

from airflow.sdk import dag, task
from kubernetes.client import models as k8s

DAG_ID = "refused_tasks"
FORBIDDEN_NAMESPACE = "team-b"


@dag(dag_id=DAG_ID, schedule=None, catchup=False, default_args={"retries": 0}, tags=["kubernetes"])
def refused_tasks() -> None:
    @task(
        executor_config={"pod_override": k8s.V1Pod(metadata=k8s.V1ObjectMeta(namespace=FORBIDDEN_NAMESPACE))}
    )
    def forbidden() -> None:
        raise AssertionError("a refused task never runs")

    @task(executor_config={"KubernetesExecutor": {"namespace": FORBIDDEN_NAMESPACE}})
    def old_form() -> None:
        raise AssertionError("a refused task never runs")

    forbidden()
    old_form()


refused_tasks()
