"""Airflow adapter: the executor that plugs namespace discovery into the KubernetesExecutor."""

from airflow_provider_nsdiscovery.executors.dynamic_namespace_kubernetes_executor import (
    DynamicNamespaceKubernetesExecutor,
)

__all__ = ["DynamicNamespaceKubernetesExecutor"]
