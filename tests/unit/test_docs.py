"""Documentation that is generated from code must match the code."""

from __future__ import annotations

from airflow_provider_nsdiscovery.discovery.status import State
from docs.config_reference import README, with_reference


def test_readme_configuration_reference_is_generated_from_provider_info() -> None:
    current = README.read_text()
    assert with_reference(current) == current, "run: python docs/config_reference.py --write"


def test_readme_lists_every_namespace_state() -> None:
    """Operators look a state up there before they find docs/troubleshooting.md."""
    listed = README.read_text().partition("Namespace states:")[2].partition("\n\n")[0]
    assert [state.value for state in State if f"`{state.value}`" not in listed] == []
