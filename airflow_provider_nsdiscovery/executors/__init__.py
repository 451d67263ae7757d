"""Airflow adapter: the executor that plugs namespace discovery into the KubernetesExecutor.

The executor is imported on first use of the name (``[core] executor`` resolves it that way), not
with the package: ``airflow kubernetes-namespaces`` imports ``executors.settings`` only, and the
executor module would add the KubernetesExecutor and its imports to every CLI call.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow_provider_nsdiscovery.executors.dynamic_namespace_kubernetes_executor import (
        DynamicNamespaceKubernetesExecutor,
    )

__all__ = ["DynamicNamespaceKubernetesExecutor"]


def __getattr__(name: str) -> Any:
    if name == "DynamicNamespaceKubernetesExecutor":
        module = importlib.import_module(f"{__name__}.dynamic_namespace_kubernetes_executor")
        return module.DynamicNamespaceKubernetesExecutor
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
