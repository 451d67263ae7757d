"""A cluster policy that rejects, when the DAG is parsed, pod overrides that can never launch.

The executor refuses a bad namespace at launch time, after the run has been scheduled. Some
mistakes need no cluster to be seen: an ``executor_config`` that is not a dict, a
``pod_override`` that is not a ``V1Pod``, a namespace that cannot be a namespace name. Raising
:class:`AirflowClusterPolicyViolation` for those turns them into a DAG import error that the
author sees at once. Whether a valid name is labelled and granted is left to the executor:
a parse-time check must not call the API server, and the answer can change before the task runs.

Use it from ``airflow_local_settings.py``::

    from airflow_provider_nsdiscovery.policy import task_policy  # noqa: F401
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from airflow.exceptions import AirflowClusterPolicyViolation
from kubernetes.client import models as k8s

from airflow_provider_nsdiscovery.config import DiscoverySettings
from airflow_provider_nsdiscovery.discovery.state import decide, is_valid_namespace_name

if TYPE_CHECKING:
    from airflow.sdk import BaseOperator

# decide() judges a name's syntax before it looks at any setting, so defaults are enough to get
# the same invalid-name reason and fix the executor gives at launch time.
_SETTINGS = DiscoverySettings()


def pod_override_problem(executor_config: object) -> str | None:
    """What makes ``executor_config`` unlaunchable for a KubernetesExecutor, or None.

    An unset or empty namespace is fine: the pod template's namespace applies, as it does when
    upstream merges the override into the template.
    """
    if executor_config is None:
        return None
    if not isinstance(executor_config, dict):
        return (
            f"executor_config must be a dict such as {{'pod_override': k8s.V1Pod(...)}}, "
            f"not {type(executor_config).__name__}"
        )
    pod_override = executor_config.get("pod_override")
    if pod_override is None:
        return None
    if not isinstance(pod_override, k8s.V1Pod):
        return (
            "executor_config['pod_override'] must be a kubernetes.client.models.V1Pod, not "
            f"{type(pod_override).__name__} (build it as k8s.V1Pod(metadata=k8s.V1ObjectMeta("
            "namespace='team-a')))"
        )
    namespace = pod_override.metadata.namespace if pod_override.metadata is not None else None
    if not namespace:
        return None
    if not isinstance(namespace, str):
        return f"pod_override metadata.namespace must be a string, not {type(namespace).__name__}"
    if not is_valid_namespace_name(namespace):
        return decide(namespace, _SETTINGS, None, None).message
    return None


def task_policy(task: BaseOperator) -> None:
    """Airflow cluster policy: refuse the DAG if one of its tasks could never get a pod."""
    problem = pod_override_problem(task.executor_config)
    if problem is not None:
        raise AirflowClusterPolicyViolation(f"task '{task.task_id}' of DAG '{task.dag_id}': {problem}")
