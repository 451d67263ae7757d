"""The tap on upstream's watcher queue: every result is queued first, and only final ones are told.

The task key it reports must be the one upstream's ``process_watcher_task`` derives, or the
placement would never hear of the task; where that needs the database, nothing is reported.
"""

from __future__ import annotations

import queue
from collections.abc import Hashable
from uuid import uuid4

import pytest
from airflow.models.taskinstancekey import TaskInstanceKey
from airflow.providers.cncf.kubernetes.executors.kubernetes_executor_types import (
    ADOPTED,
    TASK_INSTANCE_ID_ANNOTATION,
    KubernetesWatch,
)
from airflow.utils.state import TaskInstanceState

from airflow_provider_nsdiscovery.executors.pod_results import ResultTap, result_key

ANNOTATIONS = {"dag_id": "d", "task_id": "t", "run_id": "r", "try_number": "1"}


def _watch(state: object, annotations: dict[str, str] = ANNOTATIONS) -> KubernetesWatch:
    return KubernetesWatch("pod", "team-a", state, annotations, "7", None)  # type: ignore[arg-type]


def _tap(*, uuid: bool = False) -> tuple[ResultTap, queue.Queue[KubernetesWatch], list[Hashable]]:
    results: queue.Queue[KubernetesWatch] = queue.Queue()
    told: list[Hashable] = []

    def on_final(key: Hashable, namespace: str) -> None:
        assert results.qsize() > 0, "told before the result was queued"
        assert namespace == "team-a"
        told.append(key)

    return ResultTap(results, on_final, uuid), results, told


def test_a_succeeded_or_failed_pod_is_queued_then_its_task_told() -> None:
    tap, results, told = _tap()
    tap.put(_watch(None))
    tap.put(_watch(TaskInstanceState.FAILED))
    assert results.qsize() == 2
    assert told == [TaskInstanceKey("d", "t", "r", 1, -1)] * 2


def test_an_adopted_pod_is_queued_but_not_told_as_finished() -> None:
    tap, results, told = _tap()
    tap.put(_watch(ADOPTED))
    assert results.qsize() == 1
    assert told == []


def test_the_key_is_the_task_instance_key_where_upstream_does_not_key_by_uuid() -> None:
    annotations = {**ANNOTATIONS, TASK_INSTANCE_ID_ANNOTATION: str(uuid4())}
    assert result_key(annotations, supports_task_instance_uuid=False) == TaskInstanceKey("d", "t", "r", 1, -1)


def test_the_key_is_the_task_instance_uuid_where_upstream_keys_by_it() -> None:
    types = pytest.importorskip("airflow.executors.workloads.types")
    if not hasattr(types, "TaskInstanceUuid"):
        pytest.skip("this Airflow keys tasks by TaskInstanceKey only")
    identity = uuid4()
    annotations = {**ANNOTATIONS, TASK_INSTANCE_ID_ANNOTATION: str(identity)}
    assert result_key(annotations, supports_task_instance_uuid=True) == types.TaskInstanceUuid(identity)


def test_a_pod_whose_key_needs_the_database_is_left_to_sync() -> None:
    without_run_id = {key: value for key, value in ANNOTATIONS.items() if key != "run_id"}
    tap, results, told = _tap()
    tap.put(_watch(None, without_run_id))
    assert results.qsize() == 1
    assert told == []


def test_a_failing_listener_never_breaks_the_watcher() -> None:
    results: queue.Queue[KubernetesWatch] = queue.Queue()

    def broken(key: Hashable, namespace: str) -> None:
        raise RuntimeError("boom")

    ResultTap(results, broken, False).put(_watch(None))
    assert results.qsize() == 1
