"""Tasks in several Kubernetes namespaces, found at runtime by DynamicNamespaceKubernetesExecutor.

A task runs in the executor's home namespace (``[kubernetes_executor] namespace``) unless its
``executor_config`` pod_override names another one. The executor launches a pod in another
namespace only if that namespace is labelled ``airflow-enabled=true`` and the scheduler may manage
pods there. Otherwise no pod is created: the task fails at once, and its audit log says which
namespace, why, and the command that fixes it.

``make demo`` runs this DAG against a local API server where ``team-a`` is labelled and granted,
``team-b`` is labelled but not granted, and ``team-c`` is granted but not labelled (until the demo
labels it and re-runs that task).
"""

from __future__ import annotations

import os
import socket

from airflow.sdk import dag, task
from kubernetes.client import models as k8s


def in_namespace(namespace: str) -> dict[str, k8s.V1Pod]:
    """executor_config that sends a task's pod to ``namespace``."""
    return {"pod_override": k8s.V1Pod(metadata=k8s.V1ObjectMeta(namespace=namespace))}


def report() -> str:
    # POD_NAMESPACE and POD_NAME are set from the downward API by the pod template:
    #   env: [{name: POD_NAMESPACE, valueFrom: {fieldRef: {fieldPath: metadata.namespace}}}, ...]
    namespace = os.environ.get("POD_NAMESPACE", "(not in a pod)")
    print(f"ran in namespace {namespace}, pod {os.environ.get('POD_NAME', '-')}, host {socket.gethostname()}")
    return namespace


@dag(schedule=None, catchup=False, tags=["kubernetes", "namespaces"])
def namespaces_demo() -> None:
    @task
    def home() -> str:
        """No executor_config: the executor's home namespace, which needs no label."""
        return report()

    @task(executor_config=in_namespace("team-a"))
    def team_a() -> str:
        return report()

    @task(executor_config=in_namespace("team-b"))
    def team_b() -> str:
        return report()

    @task(executor_config=in_namespace("team-c"))
    def team_c() -> str:
        return report()

    # Independent tasks: a namespace that is refused does not hold up the others.
    home()
    team_a()
    team_b()
    team_c()


namespaces_demo()
