"""What Airflow's KubernetesExecutor expects of a cluster, as the tests grant and find it.

Spelt out here rather than derived from airflow_provider_nsdiscovery.discovery.permissions, so a
test granting these rules checks the provider's own list against what the executor really does.
"""

from __future__ import annotations

from kubernetes import client

CONTAINER_NAME = "base"
"""The container name Airflow's KubernetesExecutor gives the task container."""

POD_RULES: list[client.V1PolicyRule] = [
    client.V1PolicyRule(
        api_groups=[""],
        resources=["pods"],
        verbs=["create", "get", "list", "watch", "patch", "delete"],
    ),
    client.V1PolicyRule(api_groups=[""], resources=["pods/log"], verbs=["get"]),
]
"""What the KubernetesExecutor's scheduler needs in each namespace it launches pods in."""

POD_WATCH_EVERYWHERE_RULES: list[client.V1PolicyRule] = [
    client.V1PolicyRule(api_groups=[""], resources=["pods"], verbs=["list", "watch"]),
]
"""Cluster-wide rules that let the executor replace its per-namespace watches with one."""
