"""Reads :class:`DiscoverySettings` from Airflow configuration; the only place that knows option types."""

from __future__ import annotations

from typing import Any

from airflow_provider_nsdiscovery.config import SECTION, DiscoverySettings, SettingsError, split_list
from airflow_provider_nsdiscovery.get_provider_info import OPTIONS, default_value


def settings_from_conf(conf: Any, *, home_namespace: str) -> DiscoverySettings:
    """Build settings from ``[kubernetes_namespace_discovery]`` (and its AIRFLOW__... env vars)."""
    values: dict[str, Any] = {}
    for name, (kind, _) in OPTIONS.items():
        raw = str(conf.get(SECTION, name, fallback=default_value(name)))
        try:
            if kind == "integer":
                values[name] = int(raw)
            elif kind == "float":
                values[name] = float(raw)
            elif name.endswith("_namespaces"):
                values[name] = split_list(raw)
            else:
                values[name] = raw
        except ValueError:
            raise SettingsError(
                f"[{SECTION}] {name} must be {'an' if kind == 'integer' else 'a'} {kind}, got {raw!r}"
            ) from None
    return DiscoverySettings(home_namespace=home_namespace, **values)
