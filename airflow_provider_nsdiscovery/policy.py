"""A cluster policy that rejects, when the DAG is parsed, executor configs that can never launch.

The executor refuses a bad ``executor_config`` at launch time, after the run has been scheduled.
Those mistakes need no cluster to be seen, so raising :class:`AirflowClusterPolicyViolation` for
them turns them into a DAG import error that the author sees at once, with the same words the
executor would use (both call :func:`~airflow_provider_nsdiscovery.executor_config.executor_config_problem`).
Whether a valid namespace name is labelled and granted is left to the executor: a parse-time check
must not call the API server, and the answer can change before the task runs.

Use it from ``airflow_local_settings.py``::

    from airflow_provider_nsdiscovery.policy import task_policy  # noqa: F401
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from airflow.exceptions import AirflowClusterPolicyViolation

from airflow_provider_nsdiscovery.executor_config import executor_config_problem

if TYPE_CHECKING:
    from airflow.sdk import BaseOperator

# The name this check had before it moved to executor_config; kept for code that imports it.
pod_override_problem = executor_config_problem


def task_policy(task: BaseOperator) -> None:
    """Airflow cluster policy: refuse the DAG if one of its tasks could never get a pod."""
    problem = executor_config_problem(task.executor_config)
    if problem is not None:
        raise AirflowClusterPolicyViolation(f"task '{task.task_id}' of DAG '{task.dag_id}': {problem}")
