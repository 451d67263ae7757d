"""Documentation that is generated from code must match the code."""

from __future__ import annotations

from pathlib import Path

import pytest

from airflow_provider_nsdiscovery.config_reference import COMMAND, with_reference
from airflow_provider_nsdiscovery.discovery.status import State

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_configuration_reference_is_generated_from_the_declared_options() -> None:
    current = README.read_text()
    assert with_reference(current) == current, f"run: {COMMAND}"


def test_readme_lists_every_namespace_state() -> None:
    """Operators look a state up there before they find docs/troubleshooting.md."""
    listed = README.read_text().partition("Namespace states:")[2].partition("\n\n")[0]
    assert [state.value for state in State if f"`{state.value}`" not in listed] == []


def test_a_readme_without_the_markers_is_refused_rather_than_appended_to() -> None:
    with pytest.raises(ValueError, match="markers are missing"):
        with_reference("# README\n")
