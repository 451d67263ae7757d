"""DiscoverySettings validation: a bad option stops the scheduler at start, naming the option."""

from __future__ import annotations

import pytest

from airflow_provider_nsdiscovery.config import DiscoverySettings, SettingsError, split_list


def test_default_settings_select_airflow_enabled_namespaces_and_exclude_system_ones() -> None:
    settings = DiscoverySettings()
    assert settings.selector.text == "airflow-enabled=true"
    assert settings.selector.matches({"airflow-enabled": "true"})
    assert settings.exclude_namespaces == ("kube-system", "kube-public", "kube-node-lease")


@pytest.mark.parametrize("selector", ["x>y", "team in (a", "a in b", "", "-team=a"])
def test_bad_selector_is_a_settings_error_naming_the_option_and_quoting_the_selector(selector: str) -> None:
    with pytest.raises(SettingsError) as caught:
        DiscoverySettings(label_selector=selector)
    message = str(caught.value)
    assert message.startswith("[kubernetes_namespace_discovery] label_selector: ")
    assert repr(selector) in message


def test_bad_selector_error_gives_the_option_the_value_and_the_reason() -> None:
    with pytest.raises(SettingsError) as caught:
        DiscoverySettings(label_selector="airflow-enabled=true,team in (a,b_)")
    assert str(caught.value) == (
        "[kubernetes_namespace_discovery] label_selector: invalid label selector "
        "'airflow-enabled=true,team in (a,b_)': value 'b_' of key 'team' must be empty or letters, "
        "digits, '-', '_' or '.', starting and ending with a letter or digit"
    )


def test_settings_error_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="label_selector"):
        DiscoverySettings(label_selector="x>y")


@pytest.mark.parametrize("interval", [0, -1.0])
def test_non_positive_recheck_interval_is_refused(interval: float) -> None:
    with pytest.raises(SettingsError, match=r"\[kubernetes_namespace_discovery\] access_recheck_interval"):
        DiscoverySettings(access_recheck_interval=interval)


@pytest.mark.parametrize("jitter", [-0.1, 1.0, 1.5])
def test_jitter_outside_zero_to_one_is_refused(jitter: float) -> None:
    with pytest.raises(SettingsError, match=r"\[kubernetes_namespace_discovery\] recheck_jitter"):
        DiscoverySettings(recheck_jitter=jitter)


@pytest.mark.parametrize("jitter", [0.0, 0.5, 0.99])
def test_jitter_inside_zero_to_one_is_accepted(jitter: float) -> None:
    assert DiscoverySettings(recheck_jitter=jitter).recheck_jitter == jitter


@pytest.mark.parametrize("concurrency", [0, -3])
def test_review_concurrency_below_one_is_refused(concurrency: int) -> None:
    with pytest.raises(SettingsError, match=r"\[kubernetes_namespace_discovery\] review_concurrency"):
        DiscoverySettings(review_concurrency=concurrency)


def test_negative_initial_sync_timeout_is_refused() -> None:
    with pytest.raises(SettingsError, match="initial_sync_timeout"):
        DiscoverySettings(initial_sync_timeout=-1)


def test_zero_initial_sync_timeout_is_accepted() -> None:
    assert DiscoverySettings(initial_sync_timeout=0).initial_sync_timeout == 0


def test_settings_equality_ignores_the_derived_selector() -> None:
    assert DiscoverySettings(home_namespace="airflow") == DiscoverySettings(home_namespace="airflow")
    assert DiscoverySettings(label_selector="a=b") != DiscoverySettings(label_selector="a=c")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("", ()),
        (" , ,", ()),
        ("team-a", ("team-a",)),
        ("team-a, team-b ,team-c", ("team-a", "team-b", "team-c")),
        ("team-b,team-a,team-b", ("team-b", "team-a")),
        ("team-a,,team-b,", ("team-a", "team-b")),
    ],
)
def test_split_list_drops_blanks_keeps_order_and_removes_duplicates(
    value: str, expected: tuple[str, ...]
) -> None:
    assert split_list(value) == expected
