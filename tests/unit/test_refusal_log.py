"""A refusal reaches the task log and the audit log without holding or breaking the scheduler loop."""

from __future__ import annotations

import gc
import logging
import threading
from collections import deque
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from airflow.executors.base_executor import BaseExecutor
from airflow.models.log import Log
from airflow.models.taskinstancekey import TaskInstanceKey
from airflow.utils.log.file_task_handler import StructuredLogMessage
from sqlalchemy.orm import attributes

from airflow_provider_nsdiscovery.discovery.status import NamespaceStatus, State
from airflow_provider_nsdiscovery.executors import refusal_log
from airflow_provider_nsdiscovery.executors.refusal_log import (
    NOT_RUN,
    REFUSED_EVENT,
    Refusal,
    RefusalReports,
    TaskLogJob,
    task_log_text,
    write_task_log,
)
from kubeharness import wait_until

KEY = TaskInstanceKey("nsd_dag", "team_b", "manual__1", 2, -1)
LOG_PATH = "dag_id=nsd_dag/run_id=manual__1/task_id=team_b/attempt=2.log"
STATUS = NamespaceStatus("team-b", State.FORBIDDEN, "scheduler identity x lacks: create pods", "kubectl ...")


def workload() -> SimpleNamespace:
    """What the executor gets on Airflow 3: an ExecuteTask with the try's log path and its task instance."""
    return SimpleNamespace(log_path=LOG_PATH, ti=SimpleNamespace(key=KEY))


class Recorder:
    """A write function that records each job and the thread it ran on; fails while ``failing``."""

    def __init__(self, failing: int = 0) -> None:
        self.jobs: list[tuple[TaskLogJob, str]] = []
        self.failing = failing

    def __call__(self, job: TaskLogJob) -> None:
        self.jobs.append((job, threading.current_thread().name))
        if len(self.jobs) <= self.failing:
            raise OSError("remote store unreachable")


@pytest.fixture
def executor() -> BaseExecutor:
    return BaseExecutor()


def started(reports: RefusalReports) -> RefusalReports:
    reports.start()
    return reports


def parsed(text: str) -> list[tuple[str, str]]:
    """The lines as the api-server's log reader parses them."""
    messages = [StructuredLogMessage.model_validate_json(line) for line in text.splitlines()]
    assert all(message.timestamp is not None for message in messages)
    return [(str(getattr(message, "level", "")), message.event) for message in messages]


def test_a_namespace_refusal_is_logged_as_the_reason_then_the_fix_then_that_nothing_ran() -> None:
    text = task_log_text(Refusal.of(STATUS), datetime(2026, 1, 2, tzinfo=UTC))

    assert parsed(text) == [
        ("error", f"Task not launched: {STATUS.summary}"),
        ("error", "To fix: kubectl ..."),
        ("info", NOT_RUN),
    ]


def test_a_refusal_whose_fix_is_in_its_text_is_logged_whole() -> None:
    text = task_log_text(Refusal("executor_config is a str, not a dict; write {...}"), datetime.now(UTC))

    assert parsed(text) == [
        ("error", "Task not launched: executor_config is a str, not a dict; write {...}"),
        ("info", NOT_RUN),
    ]


def test_report_queues_one_audit_event_and_writes_the_log_on_another_thread(executor: BaseExecutor) -> None:
    write = Recorder()
    reports = started(RefusalReports(executor, write, base_delay=0.01))
    try:
        reports.report(KEY, [workload()], Refusal.of(STATUS))

        wait_until(lambda: write.jobs, "the task log to be written")
    finally:
        reports.stop()
    [(job, thread)] = write.jobs
    assert (job.log_path, job.ti.key) == (LOG_PATH, KEY)
    assert thread == "nsd-refusal-logs"
    [record] = executor._task_event_logs
    assert (record.event, record.extra) == (REFUSED_EVENT, STATUS.message)
    assert (record.task_id, record.try_number) == (KEY.task_id, KEY.try_number)


def test_a_command_without_a_workload_gets_the_audit_event_only(executor: BaseExecutor) -> None:
    write = Recorder()
    reports = RefusalReports(executor, write)

    reports.report(KEY, ["airflow", "tasks", "run"], Refusal("refused"))

    assert [record.event for record in executor._task_event_logs] == [REFUSED_EVENT]
    assert reports.writer.pending == frozenset()


def test_report_never_raises_and_still_writes_the_log_when_the_audit_event_fails(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken(**kwargs: Any) -> None:
        raise RuntimeError("no audit log here")

    executor = SimpleNamespace(log_task_event=broken, _task_event_logs=deque())
    reports = RefusalReports(executor, Recorder())

    reports.report(KEY, [workload()], Refusal("refused"))

    assert [job.log_path for job in reports.writer.pending] == [LOG_PATH]
    assert "Could not add the audit event" in caplog.text


def test_a_write_that_keeps_failing_is_retried_then_given_up_with_one_warning_and_one_error(
    executor: BaseExecutor, caplog: pytest.LogCaptureFixture
) -> None:
    write = Recorder(failing=100)
    reports = started(RefusalReports(executor, write, base_delay=0.001, max_delay=0.005))
    try:
        with caplog.at_level(logging.DEBUG, logger="airflow_provider_nsdiscovery.cleanup"):
            reports.report(KEY, [workload()], Refusal("refused"))
            wait_until(lambda: not reports.writer.pending, "the writer to give up")
        health = reports.writer.health
        assert health is not None
        assert health.healthy  # failing writes are the job's, not the loop's
    finally:
        reports.stop()
    assert len(write.jobs) == refusal_log.MAX_TRIES
    problems = [(r.levelname, r.getMessage()) for r in caplog.records if r.levelno >= logging.WARNING]
    assert [level for level, _ in problems] == ["WARNING", "ERROR"]
    assert all(LOG_PATH in message for _, message in problems)


def test_audit_records_outlive_the_scheduler_s_save_which_pops_them_off_the_queue(
    executor: BaseExecutor,
) -> None:
    """Airflow 3.1-3.3 hand ``bulk_save_objects`` a generator popping the queue; SQLAlchemy holds a
    weak reference to each object: an unheld record is freed and inserted empty."""
    reports = RefusalReports(executor, Recorder())
    reports.report(KEY, [workload()], Refusal("refused"))
    unheld = deque([Log(event="unheld", task_instance=KEY, extra="")])

    def save(queue: deque[Log]) -> list[Any]:
        popped = (queue.popleft() for _ in range(len(queue)))
        states = [attributes.instance_state(record) for record in popped]
        gc.collect()
        return [state.dict.get("event") for state in states]

    assert save(executor._task_event_logs) == [REFUSED_EVENT]
    assert save(unheld) == [None]  # what happens without the hold


def test_the_task_log_file_is_written_once_under_base_log_folder_and_uploaded_each_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIRFLOW__LOGGING__BASE_LOG_FOLDER", str(tmp_path))
    uploads: list[tuple[str, Any]] = []
    remote = SimpleNamespace(upload=lambda path, ti: uploads.append((path, ti)))
    monkeypatch.setattr("airflow.sdk.log.load_remote_log_handler", lambda: remote)
    ti = SimpleNamespace(key=KEY)
    job = TaskLogJob(LOG_PATH, task_log_text(Refusal("refused"), datetime.now(UTC)), ti)

    write_task_log(job)
    write_task_log(job)  # a retry after a failed upload

    assert (tmp_path / LOG_PATH).read_text() == job.text
    assert uploads == [(LOG_PATH, ti), (LOG_PATH, ti)]
