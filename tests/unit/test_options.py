"""An option is one declaration: a field of DiscoverySettings made by ``option()``.

Everything else (the Airflow settings reader, the provider's config section, the README's
reference) is derived from :data:`OPTIONS`, so each derivation must list every declared option,
nothing else, with the declared type and default.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from airflow_provider_nsdiscovery.config import (
    OPTIONS,
    SECTION,
    DiscoverySettings,
    Kind,
    Option,
    SettingsError,
    declared_options,
    option,
)
from airflow_provider_nsdiscovery.config_reference import render
from airflow_provider_nsdiscovery.executors.settings import settings_from_conf
from airflow_provider_nsdiscovery.get_provider_info import get_provider_info

NAMES = list(OPTIONS)


class RecordingConf:
    """Airflow's ``conf.get`` answering every option with ``values`` or the fallback it is given."""

    def __init__(self, values: dict[str, str] | None = None) -> None:
        self.values = values or {}
        self.fallbacks: dict[str, Any] = {}

    def get(self, section: str, key: str, fallback: Any = None) -> Any:
        assert section == SECTION
        self.fallbacks[key] = fallback
        return self.values.get(key, fallback)


def _other_value(declared: Option) -> Any:
    """A valid value that differs from the default, so reading it proves the option was parsed."""
    return {
        Kind.INTEGER: 3,
        Kind.FLOAT: 0.5,
        Kind.STRING: "team=a",
        Kind.LIST: ("team-a", "team-b"),
    }[declared.kind]


def test_a_field_made_by_option_is_the_whole_declaration() -> None:
    @dataclasses.dataclass(frozen=True)
    class Extended(DiscoverySettings):
        pod_budget: int = option(Kind.INTEGER, 5, "Pods per namespace.", example="10")

    added = declared_options(Extended)
    assert list(added) == [*OPTIONS, "pod_budget"]
    assert added["pod_budget"] == Option("pod_budget", Kind.INTEGER, 5, "Pods per namespace.", "10")
    assert "| `pod_budget` | integer | `5` | Pods per namespace. Example: `10`. |" in render(added)


def test_every_settings_field_but_the_home_namespace_is_a_declared_option() -> None:
    fields = [f.name for f in dataclasses.fields(DiscoverySettings) if f.init]
    assert [name for name in fields if name != "home_namespace"] == NAMES


@pytest.mark.parametrize("name", NAMES)
def test_provider_info_declares_the_option_as_declared(name: str) -> None:
    declared = OPTIONS[name]
    assert get_provider_info()["config"][SECTION]["options"][name] == {
        "description": declared.description,
        "version_added": "0.1.0",
        "type": declared.kind.airflow_type,
        "example": declared.example,
        "default": declared.default_text,
    }


def test_provider_info_declares_only_the_declared_options_in_their_order() -> None:
    assert list(get_provider_info()["config"][SECTION]["options"]) == NAMES


@pytest.mark.parametrize("name", NAMES)
def test_settings_reader_falls_back_to_the_declared_default(name: str) -> None:
    conf = RecordingConf()
    settings = settings_from_conf(conf, home_namespace="airflow")
    assert conf.fallbacks[name] == OPTIONS[name].default_text
    assert getattr(settings, name) == OPTIONS[name].default
    assert type(getattr(settings, name)) is OPTIONS[name].kind.python_type


@pytest.mark.parametrize("name", NAMES)
def test_settings_reader_parses_the_option_by_its_declared_type(name: str) -> None:
    declared = OPTIONS[name]
    value = _other_value(declared)
    settings = settings_from_conf(RecordingConf({name: declared.kind.text(value)}), home_namespace="airflow")
    assert getattr(settings, name) == value
    assert type(getattr(settings, name)) is declared.kind.python_type


def test_settings_reader_asks_for_the_declared_options_only() -> None:
    conf = RecordingConf()
    settings_from_conf(conf, home_namespace="airflow")
    assert list(conf.fallbacks) == NAMES


@pytest.mark.parametrize("name", NAMES)
def test_generated_reference_lists_the_option_with_its_declared_type_and_default(name: str) -> None:
    declared = OPTIONS[name]
    default = f"`{declared.default_text}`" if declared.default_text else "(empty)"
    row = f"| `{name}` | {declared.kind.airflow_type} | {default} | {declared.description} |"
    assert row in render().splitlines()


def test_generated_reference_has_one_row_per_declared_option() -> None:
    rows = render().splitlines()[2:]
    assert [row.split("`")[1] for row in rows] == NAMES


@pytest.mark.parametrize("name", NAMES)
def test_declared_default_survives_being_written_as_text_and_read_back(name: str) -> None:
    declared = OPTIONS[name]
    assert declared.parse(declared.default_text) == declared.default


@pytest.mark.parametrize(
    ("kind", "default"),
    [(Kind.FLOAT, 30), (Kind.INTEGER, 8.0), (Kind.LIST, "a,b"), (Kind.STRING, ("a",))],
)
def test_a_default_of_another_type_than_declared_is_refused(kind: Kind, default: Any) -> None:
    with pytest.raises(TypeError, match="option broken: default"):
        Option("broken", kind, default, "Broken.")


@pytest.mark.parametrize(
    ("kind", "raw", "message"),
    [
        (Kind.INTEGER, "2.5", "must be an integer, got '2.5'"),
        (Kind.FLOAT, "soon", "must be a float, got 'soon'"),
    ],
)
def test_unparsable_text_is_a_settings_error_naming_section_option_and_type(
    kind: Kind, raw: str, message: str
) -> None:
    declared = Option("some_option", kind, kind.python_type(), "Some option.")
    with pytest.raises(SettingsError) as caught:
        declared.parse(raw)
    assert str(caught.value) == f"[{SECTION}] some_option {message}"


def test_descriptions_are_one_line_so_they_fit_a_table_cell() -> None:
    assert all("\n" not in o.description and "  " not in o.description for o in OPTIONS.values())
