"""Provider metadata for Airflow: package, executor, CLI and the configuration section.

The section is rendered from the options declared in :mod:`airflow_provider_nsdiscovery.config`,
so what Airflow shows and validates cannot drift from what the executor reads.
"""

from __future__ import annotations

from importlib import metadata
from typing import Any

from airflow_provider_nsdiscovery import __version__
from airflow_provider_nsdiscovery.config import OPTIONS, SECTION

PACKAGE = "airflow-provider-nsdiscovery"
EXECUTOR = "airflow_provider_nsdiscovery.executors.DynamicNamespaceKubernetesExecutor"


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
                        "description": option.description,
                        "version_added": "0.1.0",
                        "type": option.kind.airflow_type,
                        "example": option.example,
                        "default": option.default_text,
                    }
                    for name, option in OPTIONS.items()
                },
            }
        },
    }
