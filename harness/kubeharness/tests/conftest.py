"""The harness's own tests run on the cluster its fixtures start."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest_plugins = ["kubeharness.pytest_plugin"]

_HERE = Path(__file__).parent


def pytest_configure(config: pytest.Config) -> None:
    # Registered here too, so these tests can run on their own, outside the provider's suite.
    config.addinivalue_line("markers", "integration: needs a real Kubernetes control plane")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test here starts or uses a control plane: count them with the integration tests."""
    for item in items:
        if item.path.is_relative_to(_HERE):
            item.add_marker(pytest.mark.integration)
