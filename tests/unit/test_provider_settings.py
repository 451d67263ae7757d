"""Settings read from Airflow configuration, and the provider metadata that declares them."""

from __future__ import annotations

import dataclasses
import importlib
import typing
from typing import Any

import pytest

from airflow_provider_nsdiscovery import __version__
from airflow_provider_nsdiscovery.config import DiscoverySettings, SettingsError
from airflow_provider_nsdiscovery.executors.settings import settings_from_conf
from airflow_provider_nsdiscovery.get_provider_info import get_provider_info

SECTION = "kubernetes_namespace_discovery"
CONFIGURABLE = [
    f.name for f in dataclasses.fields(DiscoverySettings) if f.init and f.name != "home_namespace"
]


class FakeConf:
    """The ``get(section, key, fallback=...)`` of Airflow's conf, fed by AIRFLOW__SECTION__KEY variables."""

    def __init__(self, **env: str) -> None:
        self.env = env
        self.asked: list[tuple[str, str]] = []

    def get(self, section: str, key: str, fallback: Any = None) -> Any:
        self.asked.append((section, key))
        return self.env.get(f"AIRFLOW__{section.upper()}__{key.upper()}", fallback)


def env(name: str, value: str) -> dict[str, str]:
    return {f"AIRFLOW__{SECTION.upper()}__{name.upper()}": value}


# settings_from_conf ----------------------------------------------------------------------------


def test_unset_options_take_the_defaults_declared_by_the_provider() -> None:
    conf = FakeConf()
    settings = settings_from_conf(conf, home_namespace="airflow")
    assert settings == DiscoverySettings(home_namespace="airflow")
    assert sorted(conf.asked) == sorted((SECTION, name) for name in CONFIGURABLE)


def test_home_namespace_comes_from_the_caller_not_the_section() -> None:
    assert settings_from_conf(FakeConf(), home_namespace="scheduler-ns").home_namespace == "scheduler-ns"


def test_overrides_are_parsed_to_ints_floats_and_lists() -> None:
    conf = FakeConf(
        **env("label_selector", "airflow-enabled=true,team in (a,b)"),
        **env("candidate_namespaces", "team-a, team-b,,team-a"),
        **env("exclude_namespaces", ""),
        **env("access_recheck_interval", "2.5"),
        **env("recheck_jitter", "0"),
        **env("review_concurrency", "4"),
        **env("initial_sync_timeout", "0"),
    )
    settings = settings_from_conf(conf, home_namespace="airflow")
    assert settings == DiscoverySettings(
        home_namespace="airflow",
        label_selector="airflow-enabled=true,team in (a,b)",
        candidate_namespaces=("team-a", "team-b"),
        exclude_namespaces=(),
        access_recheck_interval=2.5,
        recheck_jitter=0.0,
        review_concurrency=4,
        initial_sync_timeout=0.0,
    )
    assert isinstance(settings.review_concurrency, int)
    assert isinstance(settings.access_recheck_interval, float)


@pytest.mark.parametrize(
    ("name", "raw", "kind"),
    [
        ("review_concurrency", "four", "an integer"),
        ("review_concurrency", "2.5", "an integer"),
        ("access_recheck_interval", "soon", "a float"),
        ("recheck_jitter", "10%", "a float"),
        ("initial_sync_timeout", "", "a float"),
    ],
)
def test_non_number_is_a_settings_error_naming_the_option(name: str, raw: str, kind: str) -> None:
    with pytest.raises(SettingsError) as caught:
        settings_from_conf(FakeConf(**env(name, raw)), home_namespace="airflow")
    assert str(caught.value) == f"[{SECTION}] {name} must be {kind}, got {raw!r}"


def test_number_out_of_range_from_conf_is_a_settings_error_naming_the_option() -> None:
    with pytest.raises(SettingsError, match=r"\[kubernetes_namespace_discovery\] review_concurrency"):
        settings_from_conf(FakeConf(**env("review_concurrency", "0")), home_namespace="airflow")


def test_bad_selector_from_conf_is_a_settings_error_naming_the_option() -> None:
    with pytest.raises(SettingsError, match=r"\[kubernetes_namespace_discovery\] label_selector: .*'x>y'"):
        settings_from_conf(FakeConf(**env("label_selector", "x>y")), home_namespace="airflow")


# get_provider_info -----------------------------------------------------------------------------


def test_provider_declares_the_dynamic_namespace_executor() -> None:
    info = get_provider_info()
    assert info["executors"] == ["airflow_provider_nsdiscovery.executors.DynamicNamespaceKubernetesExecutor"]
    assert info["package-name"] == "airflow-provider-nsdiscovery"
    assert info["versions"] == [__version__]


def test_declared_executor_path_imports_the_executor_class() -> None:
    module_path, _, class_name = get_provider_info()["executors"][0].rpartition(".")
    executor = getattr(importlib.import_module(module_path), class_name)
    assert executor.__name__ == "DynamicNamespaceKubernetesExecutor"


def test_config_section_declares_every_discovery_option() -> None:
    section = get_provider_info()["config"]
    assert list(section) == [SECTION]
    assert sorted(section[SECTION]["options"]) == sorted(CONFIGURABLE)


@pytest.mark.parametrize("name", CONFIGURABLE)
def test_declared_default_is_the_settings_default(name: str) -> None:
    option = get_provider_info()["config"][SECTION]["options"][name]
    default = next(f.default for f in dataclasses.fields(DiscoverySettings) if f.name == name)
    expected = ",".join(default) if isinstance(default, tuple) else str(default)
    assert option["default"] == expected
    assert option["description"]
    assert option["version_added"] == "0.1.0"
    assert "example" in option


@pytest.mark.parametrize("name", CONFIGURABLE)
def test_declared_type_matches_the_settings_field(name: str) -> None:
    option = get_provider_info()["config"][SECTION]["options"][name]
    annotation = typing.get_type_hints(DiscoverySettings)[name]
    expected = {int: "integer", float: "float", str: "string", tuple[str, ...]: "string"}[annotation]
    assert option["type"] == expected


def test_declared_list_defaults_are_comma_separated() -> None:
    options = get_provider_info()["config"][SECTION]["options"]
    assert options["label_selector"]["default"] == "airflow-enabled=true"
    assert options["exclude_namespaces"]["default"] == "kube-system,kube-public,kube-node-lease"
    assert options["candidate_namespaces"]["default"] == ""


def test_provider_config_types_defaults_and_examples_are_pinned() -> None:
    """Pinned: Airflow validates and shows these, so a refactoring must not change a byte of them."""
    options = get_provider_info()["config"][SECTION]["options"]
    assert {name: (o["type"], o["default"], o["example"]) for name, o in options.items()} == {
        "label_selector": ("string", "airflow-enabled=true", None),
        "candidate_namespaces": ("string", "", None),
        "exclude_namespaces": ("string", "kube-system,kube-public,kube-node-lease", None),
        "access_recheck_interval": ("float", "60.0", None),
        "access_backstop_interval": ("float", "1800.0", None),
        "recheck_jitter": ("float", "0.1", None),
        "review_concurrency": ("integer", "8", None),
        "initial_sync_timeout": ("float", "30.0", None),
    }
