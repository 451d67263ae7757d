"""RBAC that the official Airflow Helm chart leaves out for this executor, rendered per release.

The chart binds its pod-launcher Role to the scheduler and the workers only for executors it
knows by name (an executor given by import path gets no binding, so the scheduler cannot create
pods even at home), grants the API server ``get pods/log`` in the release namespace only, and has
no namespace reader. Released chart versions have no hook for extra objects of any kind
(``extraManifests`` was declined upstream, apache/airflow#22972), so these objects are applied
beside the release, by whoever owns each scope:

- ``cluster``: the namespace reader discovery needs, cluster-wide (a cluster admin, once);
- ``rbac-watch``: optional, lets discovery see RBAC changes as they happen;
- ``release-namespace``: pod rights of the scheduler and the workers where the release runs;
- ``team``: one team namespace, labelled for discovery, with pod rights for the scheduler, log
  reading for the API server, and the workers' ServiceAccount and rights there.

Names follow the chart's: its fullname rule and its default ServiceAccount names, each of which
can be overridden as in the values file; every object is prefixed with the release namespace and
fullname, as the chart names its own cluster-scoped objects, so two releases in one cluster, or
sharing a team namespace, never collide. Rules come from permissions.py. Pure: no Airflow import,
no cluster; ``python -m airflow_provider_nsdiscovery.deploy --help`` prints to stdout.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import yaml

from airflow_provider_nsdiscovery.config import OPTIONS
from airflow_provider_nsdiscovery.discovery.permissions import (
    LOG_READER_PERMISSIONS,
    NAMESPACE_DISCOVERY_PERMISSIONS,
    RBAC_WATCH_RULE,
    REQUIRED_PERMISSIONS,
    WORKER_PERMISSIONS,
    Permission,
)
from airflow_provider_nsdiscovery.discovery.remedies import RBAC_GROUP, role_rules, selector_labels
from airflow_provider_nsdiscovery.discovery.selector import parse_selector

CHART_NAME = "airflow"
PARTS = ("cluster", "rbac-watch", "release-namespace", "team")
Manifest = dict[str, Any]


@dataclass(frozen=True)
class Release:
    """A Helm release of the chart, and the ServiceAccounts it runs its components as.

    An empty account name means the chart's default, ``<fullname>-<component>``; set one where
    the values file sets ``<component>.serviceAccount.name``.
    """

    name: str = "airflow"
    namespace: str = "airflow"
    fullname_override: str = ""
    scheduler_account: str = ""
    api_server_account: str = ""
    worker_account: str = ""

    @property
    def fullname(self) -> str:
        """The chart's ``airflow.fullname``: the release name if it contains the chart's name."""
        if self.fullname_override:
            base = self.fullname_override
        elif CHART_NAME in self.name:
            base = self.name
        else:
            base = f"{self.name}-{CHART_NAME}"
        return base[:63].rstrip("-")

    @property
    def scheduler(self) -> str:
        return self.scheduler_account or f"{self.fullname}-scheduler"

    @property
    def api_server(self) -> str:
        return self.api_server_account or f"{self.fullname}-api-server"

    @property
    def worker(self) -> str:
        return self.worker_account or f"{self.fullname}-worker"

    def object_name(self, suffix: str) -> str:
        return f"{self.namespace}-{self.fullname}-{suffix}"

    def labels(self) -> dict[str, str]:
        """The chart's own labels for its objects, so ``-l release=NAME`` finds these too."""
        return {"tier": "airflow", "release": self.name}


def _account(namespace: str, name: str) -> dict[str, str]:
    return {"kind": "ServiceAccount", "name": name, "namespace": namespace}


def _granted(
    release: Release,
    suffix: str,
    permissions: Sequence[Permission],
    subject: dict[str, str],
    namespace: str | None = None,
) -> list[Manifest]:
    """A Role and its RoleBinding in ``namespace``; a ClusterRole and ClusterRoleBinding without."""
    name = release.object_name(suffix)
    scope = {"namespace": namespace} if namespace is not None else {}
    kind = "Role" if namespace is not None else "ClusterRole"
    metadata = {"name": name, **scope, "labels": release.labels()}
    return [
        {
            "apiVersion": f"{RBAC_GROUP}/v1",
            "kind": kind,
            "metadata": metadata,
            "rules": role_rules(permissions),
        },
        {
            "apiVersion": f"{RBAC_GROUP}/v1",
            "kind": f"{kind}Binding",
            "metadata": dict(metadata),
            "roleRef": {"apiGroup": RBAC_GROUP, "kind": kind, "name": name},
            "subjects": [subject],
        },
    ]


def cluster_manifests(release: Release) -> list[Manifest]:
    scheduler = _account(release.namespace, release.scheduler)
    return _granted(release, "namespace-discovery", NAMESPACE_DISCOVERY_PERMISSIONS, scheduler)


def rbac_watch_manifests(release: Release) -> list[Manifest]:
    role, binding = _granted(release, "rbac-watch", (), _account(release.namespace, release.scheduler))
    role["rules"] = [RBAC_WATCH_RULE]
    return [role, binding]


def release_namespace_manifests(release: Release, *, worker_rbac: bool = True) -> list[Manifest]:
    """What the chart would bind at home for a KubernetesExecutor it recognised by name."""
    home = release.namespace
    manifests = _granted(release, "task-pods", REQUIRED_PERMISSIONS, _account(home, release.scheduler), home)
    if worker_rbac:
        manifests += _granted(
            release, "worker-pods", WORKER_PERMISSIONS, _account(home, release.worker), home
        )
    return manifests


def team_manifests(
    release: Release, team: str, *, label_selector: str | None = None, worker_rbac: bool = True
) -> list[Manifest]:
    """One team namespace.

    The workers' ServiceAccount is created here because a pod may only run as an account of its
    own namespace, and the chart's pod template names ``<fullname>-worker``: without it the API
    server refuses every task pod in this namespace. Like the Namespace, it carries no release
    label: two releases of the same fullname share it here, as their pod templates name it alike.
    """
    selector = parse_selector(label_selector or str(OPTIONS["label_selector"].default))
    home = release.namespace
    namespace = {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": team, "labels": selector_labels(selector)},
    }
    worker_account = {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {"name": release.worker, "namespace": team},
    }
    manifests = [namespace, worker_account]
    manifests += _granted(release, "task-pods", REQUIRED_PERMISSIONS, _account(home, release.scheduler), team)
    manifests += _granted(
        release, "pod-log-reader", LOG_READER_PERMISSIONS, _account(home, release.api_server), team
    )
    if worker_rbac:
        manifests += _granted(
            release, "worker-pods", WORKER_PERMISSIONS, _account(team, release.worker), team
        )
    return manifests


def render(part: str, release: Release, teams: Sequence[str] = (), **options: Any) -> list[Manifest]:
    if part == "cluster":
        return cluster_manifests(release)
    if part == "rbac-watch":
        return rbac_watch_manifests(release)
    if part == "release-namespace":
        return release_namespace_manifests(release, **options)
    if part == "team":
        return [m for team in teams for m in team_manifests(release, team, **options)]
    raise ValueError(f"unknown part {part!r}; one of {', '.join(PARTS)}")


def to_yaml(manifests: Sequence[Manifest]) -> str:
    return str(yaml.safe_dump_all(manifests, sort_keys=False))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m airflow_provider_nsdiscovery.deploy",
        description=(
            "Print the RBAC the official Airflow Helm chart leaves out for "
            "DynamicNamespaceKubernetesExecutor, for one release, as YAML for kubectl apply -f -."
        ),
    )
    parser.add_argument("part", choices=PARTS, help="which objects: see deploy/README.md")
    parser.add_argument("teams", nargs="*", metavar="TEAM_NAMESPACE", help="for part 'team': the namespaces")
    parser.add_argument("--release", default="airflow", help="Helm release name (default: airflow)")
    parser.add_argument("--namespace", default="airflow", help="the release's namespace (default: airflow)")
    parser.add_argument("--fullname-override", default="", help="as the chart's fullnameOverride")
    for component in ("scheduler", "api-server", "worker"):
        parser.add_argument(
            f"--{component}-service-account",
            default="",
            metavar="NAME",
            help=f"as the chart's {component} serviceAccount.name (default: <fullname>-{component})",
        )
    parser.add_argument(
        "--label-selector",
        default=None,
        help="for part 'team': the [kubernetes_namespace_discovery] label_selector to label for",
    )
    parser.add_argument(
        "--no-worker-rbac",
        dest="worker_rbac",
        action="store_false",
        help="give task pods no Kubernetes rights (they still get their ServiceAccount)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    parser = _parser()
    args = parser.parse_args(argv)
    if (args.part == "team") != bool(args.teams):
        parser.error("TEAM_NAMESPACE is given with part 'team', and only with it")
    release = Release(
        name=args.release,
        namespace=args.namespace,
        fullname_override=args.fullname_override,
        scheduler_account=args.scheduler_service_account,
        api_server_account=args.api_server_service_account,
        worker_account=args.worker_service_account,
    )
    options: dict[str, Any] = {}
    if args.part in ("release-namespace", "team"):
        options["worker_rbac"] = args.worker_rbac
    if args.part == "team":
        options["label_selector"] = args.label_selector
    sys.stdout.write(to_yaml(render(args.part, release, args.teams, **options)))


if __name__ == "__main__":
    main()
