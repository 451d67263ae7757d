"""Provider metadata for Airflow: package, executor, CLI and the configuration section.

Option defaults are read from :class:`DiscoverySettings` so there is one source of truth, and the
README's configuration reference is generated from this function.
"""

from __future__ import annotations

import dataclasses
from importlib import metadata
from typing import Any

from airflow_provider_nsdiscovery import __version__
from airflow_provider_nsdiscovery.config import SECTION, DiscoverySettings

PACKAGE = "airflow-provider-nsdiscovery"
EXECUTOR = "airflow_provider_nsdiscovery.executors.DynamicNamespaceKubernetesExecutor"

OPTIONS: dict[str, tuple[str, str]] = {
    "label_selector": (
        "string",
        "Kubernetes label selector choosing the namespaces tasks may run in, e.g. "
        "``airflow-enabled=true,team in (a,b)``. Selected namespaces are still access-reviewed. "
        "An invalid selector stops the scheduler at start.",
    ),
    "candidate_namespaces": (
        "string",
        "Comma-separated namespaces to use when the scheduler may not list/watch namespaces "
        "cluster-wide. Each is still access-reviewed. Ignored while the namespace watch works.",
    ),
    "exclude_namespaces": (
        "string",
        "Comma-separated namespaces never used, labelled or not.",
    ),
    "access_recheck_interval": (
        "float",
        "Seconds between access re-reviews of a namespace (spread with jitter). A revoked "
        "RoleBinding is noticed within this time; a 403 seen at run time is acted on at once.",
    ),
    "recheck_jitter": (
        "float",
        "Fraction by which each re-check is moved at random, so reviews do not come in bursts.",
    ),
    "review_concurrency": (
        "integer",
        "Access reviews in flight at once (bounds the load on the API server at start).",
    ),
    "initial_sync_timeout": (
        "float",
        "Seconds the scheduler waits at start for the first full discovery, so that task "
        "adoption after a restart sees every namespace.",
    ),
}


def default_value(name: str) -> str:
    value = {f.name: f.default for f in dataclasses.fields(DiscoverySettings)}[name]
    return ",".join(value) if isinstance(value, tuple) else str(value)


def documentation_url() -> str | None:
    """The ``Documentation`` entry of ``[project.urls]``, from the installed package's metadata.

    Read rather than written here, so pyproject.toml stays the URL's one home. Recent Airflow reads
    that entry itself for ``airflow providers get``; Airflow 3.1 shows only what this returns.
    """
    try:
        entries: list[str] = metadata.metadata(PACKAGE).get_all("Project-URL") or []
    except metadata.PackageNotFoundError:
        return None  # run from a source tree that was never installed
    for entry in entries:
        label, _, url = entry.partition(",")
        if label.strip().lower() == "documentation":
            return url.strip()
    return None


def get_provider_info() -> dict[str, Any]:
    return {
        "package-name": PACKAGE,
        "name": "Kubernetes Namespace Discovery",
        "description": "KubernetesExecutor that discovers the namespaces it may use at runtime: "
        "label selector, access reviews, live pod watchers and pre-launch namespace validation.",
        "versions": [__version__],
        "documentation-url": documentation_url(),
        "executors": [EXECUTOR],
        "cli": ["airflow_provider_nsdiscovery.cli.definition.get_namespace_discovery_cli_commands"],
        "config": {
            SECTION: {
                "description": "Runtime namespace discovery for ``DynamicNamespaceKubernetesExecutor``.",
                "options": {
                    name: {
                        "description": description,
                        "version_added": "0.1.0",
                        "type": kind,
                        "example": None,
                        "default": default_value(name),
                    }
                    for name, (kind, description) in OPTIONS.items()
                },
            }
        },
    }
