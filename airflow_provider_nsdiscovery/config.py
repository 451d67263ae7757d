"""Typed settings for namespace discovery, independent of where they were read from.

The Airflow adapter fills these from ``[kubernetes_namespace_discovery]``; tests, the CLI and the
benchmarks build them directly. Everything is validated here once, so a bad value stops the
scheduler at start with a message that names the option instead of failing later in a thread.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from airflow_provider_nsdiscovery.discovery.selector import LabelSelector, parse_selector

SECTION = "kubernetes_namespace_discovery"
DEFAULT_SELECTOR = "airflow-enabled=true"
DEFAULT_EXCLUDED = ("kube-system", "kube-public", "kube-node-lease")


class SettingsError(ValueError):
    """An option value that cannot work; the message names the option and the fix."""


@dataclass(frozen=True)
class DiscoverySettings:
    """What to discover and how often to re-check it.

    ``home_namespace`` is the executor's own ``[kubernetes_executor] namespace``: it is always used,
    as it is without this provider, and never needs a label.
    """

    home_namespace: str = "default"
    label_selector: str = DEFAULT_SELECTOR
    candidate_namespaces: tuple[str, ...] = ()
    exclude_namespaces: tuple[str, ...] = DEFAULT_EXCLUDED
    access_recheck_interval: float = 60.0
    recheck_jitter: float = 0.1
    review_concurrency: int = 8
    initial_sync_timeout: float = 30.0
    selector: LabelSelector = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "selector", parse_selector(self.label_selector))
        except ValueError as err:
            raise SettingsError(f"[{SECTION}] label_selector: {err}") from None
        if self.access_recheck_interval <= 0:
            raise SettingsError(
                f"[{SECTION}] access_recheck_interval must be a positive number of seconds, "
                f"got {self.access_recheck_interval}"
            )
        if not 0 <= self.recheck_jitter < 1:
            raise SettingsError(f"[{SECTION}] recheck_jitter must be in [0, 1), got {self.recheck_jitter}")
        if self.review_concurrency < 1:
            raise SettingsError(
                f"[{SECTION}] review_concurrency must be at least 1, got {self.review_concurrency}"
            )
        if self.initial_sync_timeout < 0:
            raise SettingsError(f"[{SECTION}] initial_sync_timeout must be >= 0 seconds")


def split_list(value: str) -> tuple[str, ...]:
    """Comma-separated option values, blanks dropped, order kept, duplicates removed."""
    return tuple(dict.fromkeys(item.strip() for item in value.split(",") if item.strip()))
