"""Suite-wide pytest configuration: the `integration` marker and a count of what it ran."""

from __future__ import annotations

from typing import Literal

import pytest

import tests.airflow_env  # noqa: F401  (first: Airflow reads its home and database at import)

pytest_plugins = ["kubeharness.pytest_plugin"]  # the session's cluster, namespaces, admin client

Outcome = Literal["passed", "failed", "skipped"]


class _IntegrationCounter:
    """A plugin object rather than bare hooks, because a test report carries no config to
    keep the tally in."""

    def __init__(self) -> None:
        self.outcomes: dict[str, Outcome] = {}

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        """One outcome per test from its setup, call and teardown reports; an error in any
        phase makes it failed, so a broken fixture cannot pass for a green run."""
        if "integration" not in report.keywords:
            return
        if report.failed or self.outcomes.get(report.nodeid) == "failed":
            self.outcomes[report.nodeid] = "failed"
        elif report.skipped:
            self.outcomes[report.nodeid] = "skipped"
        elif report.when == "call":
            self.outcomes[report.nodeid] = "passed"

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        """CI reads this line to prove the integration tests ran rather than silently skipped."""
        outcomes = list(self.outcomes.values())
        passed, failed, skipped = (outcomes.count(o) for o in ("passed", "failed", "skipped"))
        terminalreporter.write_line(
            f"integration tests run: {passed} passed, {failed} failed, {skipped} skipped"
        )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "integration: talks to a real Kubernetes API server")
    config.pluginmanager.register(_IntegrationCounter(), "nsd-integration-counter")
