"""End-to-end tests: a real Airflow 3 scheduler with this executor against a real API server."""

from __future__ import annotations

from pathlib import Path

import pytest

_HERE = Path(__file__).parent


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "e2e: runs Airflow (scheduler, api-server, dag-processor) against a real API server"
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark by location, so `-m "not e2e"` deselects every test here."""
    for item in items:
        if item.path.is_relative_to(_HERE):
            item.add_marker(pytest.mark.e2e)
