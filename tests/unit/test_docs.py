"""Documentation that is generated from code must match the code."""

from __future__ import annotations

from docs.config_reference import README, with_reference


def test_readme_configuration_reference_is_generated_from_provider_info() -> None:
    current = README.read_text()
    assert with_reference(current) == current, "run: python docs/config_reference.py --write"
