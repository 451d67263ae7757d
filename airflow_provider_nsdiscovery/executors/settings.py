"""Reads :class:`DiscoverySettings` from Airflow configuration, each option by its declared type."""

from __future__ import annotations

from typing import Any

from airflow_provider_nsdiscovery.config import OPTIONS, SECTION, DiscoverySettings


def settings_from_conf(conf: Any, *, home_namespace: str) -> DiscoverySettings:
    """Build settings from ``[kubernetes_namespace_discovery]`` (and its AIRFLOW__... env vars).

    The declared default is the fallback, so a conf that has not loaded the provider's section
    still yields the declared defaults rather than no value.
    """
    values: dict[str, Any] = {
        name: option.parse(str(conf.get(SECTION, name, fallback=option.default_text)))
        for name, option in OPTIONS.items()
    }
    return DiscoverySettings(home_namespace=home_namespace, **values)
