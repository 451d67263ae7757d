"""Tell the task placement as soon as a pod watcher hands on a task's final result.

A draining namespace keeps its watcher while a task of ours is placed there, and a finished task
left the placement only in the executor's ``sync()``: up to a scheduler loop after its pod ended.
Once upstream's watcher has put the result on its queue, the scheduler reads it from there
whether or not the watcher still runs, so the task need not hold the watcher any longer. The
queue is wrapped where the watcher is built; the result itself, and Airflow's view of the task
(reported once, by ``sync()``), are untouched.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable, Hashable
from typing import TYPE_CHECKING, Any, cast
from uuid import UUID

from airflow.providers.cncf.kubernetes.executors.kubernetes_executor_types import (
    TASK_INSTANCE_ID_ANNOTATION,
    KubernetesWatch,
)
from airflow.providers.cncf.kubernetes.kubernetes_helper_functions import annotations_to_key
from airflow.utils.state import TaskInstanceState

if TYPE_CHECKING:
    from queue import Queue

log = logging.getLogger(__name__)

FINAL_STATES = frozenset({None, TaskInstanceState.FAILED})
"""What upstream's watcher queues for a pod that succeeded (None) or failed; ADOPTED is not an end."""


def result_key(annotations: dict[str, str], supports_task_instance_uuid: bool) -> Hashable | None:
    """The task key upstream's ``process_watcher_task`` derives, or None where that needs the database.

    Pods without a run_id annotation (made by old providers) are looked up in the database by
    upstream; that is no work for a watcher thread, so those tasks leave the placement in ``sync()``.
    """
    if supports_task_instance_uuid and TASK_INSTANCE_ID_ANNOTATION in annotations:
        # Only Airflow versions whose executors key tasks by UUID have the type.
        types = importlib.import_module("airflow.executors.workloads.types")
        try:
            key: Hashable = types.TaskInstanceUuid(UUID(annotations[TASK_INSTANCE_ID_ANNOTATION]))
            return key
        except ValueError:
            return None
    if not annotations.get("run_id"):
        return None
    try:
        return annotations_to_key(annotations=annotations)
    except (KeyError, ValueError):
        return None


class ResultTap:
    """The watcher's queue, which also tells ``on_final`` each final result's task key and pod namespace."""

    def __init__(
        self, queue: Any, on_final: Callable[[Hashable, str], object], supports_task_instance_uuid: bool
    ) -> None:
        self._queue = queue
        self._on_final = on_final
        self._uuid = supports_task_instance_uuid

    @classmethod
    def around(
        cls,
        queue: Queue[KubernetesWatch],
        on_final: Callable[[Hashable, str], object],
        supports_task_instance_uuid: bool,
    ) -> Queue[KubernetesWatch]:
        """The tap, typed as the queue upstream's watcher takes (it only calls ``put``)."""
        return cast("Queue[KubernetesWatch]", cls(queue, on_final, supports_task_instance_uuid))

    def put(self, item: Any, *args: Any, **kwargs: Any) -> None:
        self._queue.put(item, *args, **kwargs)  # first: the result is safe before anyone hears of it
        if not isinstance(item, KubernetesWatch) or item.state not in FINAL_STATES:
            return
        try:
            key = result_key(item.annotations, self._uuid)
            if key is not None:
                self._on_final(key, item.namespace)
        except Exception:  # never into the watcher's loop: sync() takes the task out anyway
            log.exception("Could not record the end of pod %s/%s", item.namespace, item.pod_name)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._queue, name)
