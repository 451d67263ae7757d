"""Driving DynamicNamespaceKubernetesExecutor the way the scheduler does, for integration tests."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path
from typing import Any

from airflow.models.taskinstancekey import TaskInstanceKey
from kubernetes import client
from kubernetes.client import models as k8s

from airflow_provider_nsdiscovery.discovery.controller import NamespaceDiscovery
from airflow_provider_nsdiscovery.discovery.status import NamespaceStatus
from airflow_provider_nsdiscovery.executors import DynamicNamespaceKubernetesExecutor
from airflow_provider_nsdiscovery.executors.scheduler import DynamicNamespaceKubernetesScheduler
from kubeharness import wait_until

TEMPLATE = Path(__file__).with_name("pod_template.yaml")
_task_numbers = itertools.count()

Executor = DynamicNamespaceKubernetesExecutor


def launch(executor: Executor, namespace: str | None = None) -> TaskInstanceKey:
    """Queue a task the way the scheduler does and run one executor heartbeat."""
    key = TaskInstanceKey("nsd_dag", f"task_{next(_task_numbers)}", "manual__1", 1, -1)
    config: dict[str, Any] = {}
    if namespace is not None:
        config["pod_override"] = k8s.V1Pod(metadata=k8s.V1ObjectMeta(namespace=namespace))
    executor.running.add(key)
    executor.execute_async(
        key, ["airflow", "tasks", "run", key.dag_id, key.task_id, key.run_id], executor_config=config
    )
    executor.sync()
    return key


def worker_pods(admin: client.CoreV1Api, executor: Executor) -> list[client.V1Pod]:
    """Every pod this executor created, in any namespace (the admin sees them all)."""
    return list(admin.list_pod_for_all_namespaces(label_selector=f"airflow-worker={executor.job_id}").items)


def pod_of(admin: client.CoreV1Api, executor: Executor, key: TaskInstanceKey) -> client.V1Pod:
    pods = [p for p in worker_pods(admin, executor) if p.metadata.annotations["task_id"] == key.task_id]
    assert len(pods) == 1, f"expected one pod for {key.task_id}, found {len(pods)}"
    return pods[0]


def sync_until(
    executor: Executor, condition: Callable[[], object], what: str, *, timeout: float = 10.0
) -> None:
    """Heartbeat the executor as the scheduler would until ``condition()`` holds."""

    def step() -> object:
        executor.sync()
        return condition()

    wait_until(step, what, timeout=timeout)


def watched(executor: Executor) -> set[str]:
    assert executor.kube_scheduler is not None
    return set(executor.kube_scheduler.kube_watchers)


def discovery_of(executor: Executor) -> NamespaceDiscovery:
    """The executor's namespace discovery, there once the executor has started."""
    assert executor.discovery is not None, "the executor has not started"
    return executor.discovery


def status_of(executor: Executor, namespace: str) -> NamespaceStatus:
    """What discovery has decided about ``namespace``: a test asks only about namespaces it knows."""
    status = discovery_of(executor).status(namespace)
    assert status is not None, f"discovery has no status for {namespace}"
    return status


def scheduler_of(executor: Executor) -> DynamicNamespaceKubernetesScheduler:
    """The executor's scheduler, ours once the executor has started."""
    assert isinstance(executor.kube_scheduler, DynamicNamespaceKubernetesScheduler), "not started"
    return executor.kube_scheduler
