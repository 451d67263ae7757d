"""Supervised loops survive every exception, back off, log once per streak and report health."""

from __future__ import annotations

import logging
import threading

import pytest

from airflow_provider_nsdiscovery.loops import LoopHealth, Supervisor, run_supervised
from airflow_provider_nsdiscovery.streaming import Backoff


def _script(outcomes: list[Exception | None], stopped: threading.Event) -> tuple[list[int], object]:
    calls: list[int] = []

    def step() -> None:
        calls.append(1)
        if len(calls) >= len(outcomes):
            stopped.set()
        outcome = outcomes[len(calls) - 1]
        if outcome is not None:
            raise outcome

    return calls, step


def test_a_loop_survives_every_exception_until_it_is_stopped(caplog: pytest.LogCaptureFixture) -> None:
    stopped = threading.Event()
    failures: list[Exception | None] = [RuntimeError("a"), ConnectionError("b"), KeyError("c"), None]
    calls, step = _script(failures, stopped)
    health = LoopHealth("test-loop")
    run_supervised(health, step, stopped, Backoff(initial=0.001, maximum=0.002))  # type: ignore[arg-type]
    assert len(calls) == 4
    assert health.survived == 3
    assert not health.alive  # it ended because it was stopped, and says so


def test_a_streak_of_failures_logs_one_traceback_and_one_recovery(caplog: pytest.LogCaptureFixture) -> None:
    stopped = threading.Event()
    outcomes: list[Exception | None] = [*(ConnectionError("down") for _ in range(20)), None, None]
    _, step = _script(outcomes, stopped)
    health = LoopHealth("test-loop")
    with caplog.at_level(logging.INFO, logger="airflow_provider_nsdiscovery.loops"):
        run_supervised(health, step, stopped, Backoff(initial=0.0001, maximum=0.0002))  # type: ignore[arg-type]
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert warnings[0].exc_info is not None
    assert any("recovered after 20 failed attempts" in r.getMessage() for r in caplog.records)
    assert health.failing_since is None


def test_health_says_failing_with_the_last_error_while_a_streak_lasts() -> None:
    supervisor = Supervisor()
    entered = threading.Event()

    def step() -> None:
        entered.set()
        raise ConnectionRefusedError("connection refused")

    health = supervisor.spawn("nsd-test", step, Backoff(initial=0.05, maximum=0.05))
    assert entered.wait(5)
    try:
        for _ in range(100):
            if health.failures:
                break
            supervisor.stopped.wait(0.01)
        assert health.alive
        assert not health.healthy
        assert "connection refused" in health.describe()
    finally:
        supervisor.stop()
    assert not health.alive
