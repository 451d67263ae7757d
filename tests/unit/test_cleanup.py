"""Clean-ups that fail are retried off the scheduler loop, reported once, and forgotten on success."""

from __future__ import annotations

import logging
import threading

import pytest

from airflow_provider_nsdiscovery.cleanup import PodCleanup, PodCleanupJob
from kubeharness import wait_until

JOB = PodCleanupJob("delete", "team-a", "pod-1")


def test_a_failed_clean_up_is_retried_until_it_succeeds_and_then_forgotten(
    caplog: pytest.LogCaptureFixture,
) -> None:
    attempts: list[PodCleanupJob] = []
    allowed = threading.Event()

    def act(job: PodCleanupJob) -> None:
        attempts.append(job)
        if not allowed.is_set():
            raise PermissionError("403 Forbidden")

    cleanup = PodCleanup(act, base_delay=0.01, max_delay=0.05)
    cleanup.start()
    try:
        with caplog.at_level(logging.DEBUG, logger="airflow_provider_nsdiscovery.cleanup"):
            cleanup.defer(JOB, PermissionError("403 Forbidden"))
            cleanup.defer(JOB, PermissionError("403 Forbidden"))  # the same pod again: one entry
            wait_until(lambda: len(attempts) >= 3, "a few retries")
            assert cleanup.pending == {JOB}
            allowed.set()
            wait_until(lambda: not cleanup.pending, "the clean-up to succeed")
        warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
        assert len(warnings) == 1  # one line per pod left behind, however often it is retried
        assert "delete pod team-a/pod-1" in warnings[0].getMessage()
        settled = len(attempts)
        allowed.wait(0.2)
        assert len(attempts) == settled  # nothing is retried once done
        assert cleanup.health is not None
        assert cleanup.health.alive
    finally:
        cleanup.stop()
