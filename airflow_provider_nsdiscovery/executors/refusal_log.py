"""A refused task's reason where its user looks: the failed try's task log and the audit log.

A refused task never ran, so no worker wrote a log for its try: the UI's log view said only that
it had no worker host to fetch one from, and the reason was in the scheduler's log and at the end
of a "state mismatch" audit event. Now the executor also

- adds a "namespace refused" event to the audit log through ``BaseExecutor.log_task_event``, which
  the scheduler saves in its own session right after the executor events (nothing here touches
  the database; see :meth:`RefusalReports.hold_queued_events` for what Airflow needs from us);
- writes the reason and the fix into the file the try's log would have been: the path the
  scheduler rendered into the workload (``ExecuteTask.log_path``, from the log filename template
  the api-server reads with), under ``[logging] base_log_folder``, as the JSON lines the task
  supervisor writes. Then it hands the file to the remote log handler (``REMOTE_TASK_LOG``) as the
  task supervisor and the triggerer do, so the api-server finds it where it finds every task log:
  in remote storage, or on a log volume it shares with the scheduler.

A remote upload can block as long as the store takes, so the file is written on a supervised
thread with retries (:class:`~airflow_provider_nsdiscovery.cleanup.RetriedJobs`), never on the
scheduler loop, and nothing here raises into the loop: a refusal that cannot be written still
fails its task with its reason.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from airflow_provider_nsdiscovery.cleanup import RetriedJobs
from airflow_provider_nsdiscovery.discovery.status import NamespaceStatus

log = logging.getLogger(__name__)

REFUSED_EVENT = "namespace refused"
"""The audit-log event of a task the executor refused to launch; its extra says why and the fix."""
SOURCE = "DynamicNamespaceKubernetesExecutor"
"""The task log lines' logger: who refused, as the UI shows it beside each line."""
NOT_RUN = (
    "No pod was created for this try, so the task did not run. Once the cause is fixed, its next "
    "try (a retry, or clearing the task) is launched as usual."
)
MAX_TRIES = 8
"""Tries to write one refusal's log (over a minute or two, with the default backoff) before giving up."""


@dataclass(frozen=True)
class Refusal:
    """Why a task was not launched.

    ``message`` is the text the executor reports everywhere (scheduler log, event info, audit
    event), fix included; ``summary`` and ``fix`` are the same split in two, where the fix is
    known apart, so the task log can give the fix a line of its own.
    """

    message: str
    summary: str = ""
    fix: str = ""

    @classmethod
    def of(cls, status: NamespaceStatus) -> Refusal:
        return cls(status.message, status.summary, status.fix)


def task_log_text(refusal: Refusal, at: datetime) -> str:
    """The refusal as task log lines, in the task supervisor's format: a JSON object per line."""
    events = [("error", f"Task not launched: {refusal.summary or refusal.message}")]
    if refusal.fix:
        events.append(("error", f"To fix: {refusal.fix}"))
    events.append(("info", NOT_RUN))
    timestamp = at.astimezone(UTC).isoformat()
    return "".join(
        json.dumps({"timestamp": timestamp, "level": level, "event": event, "logger": SOURCE}) + "\n"
        for level, event in events
    )


@dataclass(frozen=True)
class TaskLogJob:
    """One refusal to write; ``log_path`` is relative to ``[logging] base_log_folder``."""

    log_path: str
    text: str
    ti: Any = field(compare=False)
    """The workload's task instance: remote handlers name the remote log after it (Elasticsearch,
    CloudWatch), as they do for the task supervisor's upload."""

    def __str__(self) -> str:
        return f"write the refusal into the task log {self.log_path}"


def write_task_log(job: TaskLogJob) -> None:
    """Write the refusal unless the file has it already (a retry after a failed upload), then upload."""
    from airflow.sdk.log import init_log_file, load_remote_log_handler  # noqa: PLC0415 (off the loop)

    path = init_log_file(job.log_path)  # folders and file with the configured permissions
    with path.open("a+", encoding="utf-8") as handle:
        handle.seek(0)
        if job.text not in handle.read():
            handle.write(job.text)
    remote = load_remote_log_handler()
    if remote is not None:
        remote.upload(job.log_path, job.ti)


class AuditLog(Protocol):
    """What Airflow's BaseExecutor offers for audit records: the method, and the queue it fills."""

    @property
    def _task_event_logs(self) -> Iterable[Any]: ...

    def log_task_event(self, *, event: str, extra: str, ti_key: Any) -> None: ...


class RefusalReports:
    """Reports refusals; :meth:`report` runs on the scheduler loop, returns at once, never raises.

    ``executor`` is the executor itself: its ``log_task_event`` queues audit records that the
    scheduler saves.
    """

    def __init__(
        self,
        executor: AuditLog,
        write: Callable[[TaskLogJob], None] = write_task_log,
        *,
        base_delay: float = 1.0,
        max_delay: float = 60.0,
    ) -> None:
        self._executor = executor
        self._held: list[Any] = []
        self.writer: RetriedJobs[TaskLogJob] = RetriedJobs(
            "nsd-refusal-logs",
            write,
            retried="writing it is retried off the scheduler loop",
            base_delay=base_delay,
            max_delay=max_delay,
            max_attempts=MAX_TRIES,
        )

    def start(self) -> None:
        self.writer.start()

    def stop(self) -> None:
        self.writer.stop()

    def report(self, key: Any, command: Any, refusal: Refusal) -> None:
        """``command`` is what the executor was given to run: on Airflow 3 a list holding the
        ``ExecuteTask`` workload, which knows the try's log path. Without one (a test's bare
        command), only the audit event is written."""
        workload = _workload(command)
        ti = getattr(workload, "ti", None)
        try:
            # The workload's key is the TaskInstanceKey the Log model takes, whatever key the executor uses.
            ti_key = getattr(ti, "key", None) or key
            self._executor.log_task_event(event=REFUSED_EVENT, extra=refusal.message, ti_key=ti_key)
            self.hold_queued_events()
        except Exception:
            log.exception("Could not add the audit event of the refusal of %s", key)
        log_path = getattr(workload, "log_path", None)
        if isinstance(log_path, str) and log_path:
            self.writer.submit(TaskLogJob(log_path, task_log_text(refusal, datetime.now(UTC)), ti))

    def hold_queued_events(self) -> None:
        """Hold the audit records still queued until the next call (the executor's next sync).

        Airflow 3.1 to 3.3 save them with ``session.bulk_save_objects`` over a generator that pops
        each record off the queue; SQLAlchemy keeps only a weak reference to an object whose state
        it is about to insert, so a record that nothing else holds is freed first and its insert
        fails ("NOT NULL constraint failed: log.event"): the scheduler logs the error and every
        record of that loop is lost. The scheduler takes the queue after each heartbeat, so the
        records held at one sync are saved (or lost for another reason) by the next.
        """
        self._held = list(self._executor._task_event_logs)


def _workload(command: Any) -> Any:
    first = command[0] if isinstance(command, list | tuple) and command else None
    return first if hasattr(first, "log_path") and hasattr(first, "ti") else None
