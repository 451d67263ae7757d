"""Every fix text the provider prints: one home, derived from the settings and permissions.

A fix is a command an operator can paste, safe to run twice and safe next to what the cluster
already has: only the missing rights are granted, in objects of their own.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from airflow_provider_nsdiscovery.config import SECTION, DiscoverySettings
from airflow_provider_nsdiscovery.discovery.permissions import (
    BY_NAME,
    RBAC_WATCH_RULE,
    REQUIRED_PERMISSIONS,
    Permission,
)
from airflow_provider_nsdiscovery.discovery.selector import LabelSelector

ROLE_PREFIX = "airflow-task-pods"
_SERVICE_ACCOUNT_PREFIX = "system:serviceaccount:"


def selector_labels(selector: LabelSelector) -> dict[str, str]:
    """Labels that make a namespace match ``selector``, as far as its clauses name a value."""
    return {r.key: r.values[0] for r in selector.requirements if r.operator in ("=", "in")}


def label_fix(name: str, settings: DiscoverySettings) -> str:
    labels = [f"{key}={value}" for key, value in selector_labels(settings.selector).items()]
    if labels:
        return f"kubectl label namespace {name} {' '.join(labels)}"
    return f"label namespace {name} so that it matches '{settings.selector.text}'"


def create_namespace_fix(name: str, settings: DiscoverySettings) -> str:
    return f"kubectl create namespace {name} && {label_fix(name, settings)}"


def exclusion_fix(name: str) -> str:
    return f"run the task in another namespace, or remove '{name}' from [{SECTION}] exclude_namespaces"


RBAC_WATCH_REMEDY = (
    f"to see them at once, let the scheduler {' and '.join(RBAC_WATCH_RULE['verbs'])} "
    f"{', '.join(RBAC_WATCH_RULE['resources'])} cluster-wide (kubectl apply -f deploy/rbac-watch.yaml)"
)

TERMINATING_FIX = "wait until it is gone and recreate it, or run the task in another namespace"


RBAC_GROUP = "rbac.authorization.k8s.io"


def rbac_subject(identity: str) -> dict[str, str]:
    """The RBAC subject for a username as the API server reports it.

    ServiceAccounts are named ``system:serviceaccount:<namespace>:<name>`` but must be bound as
    kind ServiceAccount: a User subject of that name would never match the token's identity.
    """
    namespace, _, name = identity.removeprefix(_SERVICE_ACCOUNT_PREFIX).partition(":")
    if identity.startswith(_SERVICE_ACCOUNT_PREFIX) and namespace and name and ":" not in name:
        return {"kind": "ServiceAccount", "name": name, "namespace": namespace}
    return {"kind": "User", "apiGroup": RBAC_GROUP, "name": identity}


def subject_flag(identity: str) -> str:
    """The kubectl flag that names ``identity`` as a binding subject."""
    subject = rbac_subject(identity)
    if subject["kind"] == "ServiceAccount":
        return f"--serviceaccount={subject['namespace']}:{subject['name']}"
    return f"--user={identity}"


def verbs_by_resource(permissions: Iterable[Permission]) -> dict[str, list[str]]:
    """Permissions grouped as RBAC rules group them: one resource (or subresource), its verbs."""
    grouped: dict[str, list[str]] = {}
    for permission in permissions:
        grouped.setdefault(permission.resource_path, []).append(permission.verb)
    return grouped


def role_rules(permissions: Iterable[Permission] = REQUIRED_PERMISSIONS) -> list[dict[str, list[str]]]:
    """One rule per resource, derived from the permissions, so a Role and what is checked cannot drift."""
    return [
        {"apiGroups": [""], "resources": [resource], "verbs": verbs}
        for resource, verbs in verbs_by_resource(permissions).items()
    ]


def rbac_fix(namespace: str, identity: str, missing: Iterable[str] = ()) -> str:
    """Grant exactly what is missing, without touching what is already granted.

    Each Role is named after what it grants (``airflow-task-pods-pods-log-get``), so applying it
    again is a no-op and it can never replace the rules of a Role that grants something else;
    each RoleBinding is created, or gets our identity added as one more subject if it exists.
    ``missing`` holds permission names as access reviews report them; empty means all of them.
    """
    wanted = [BY_NAME[m] for m in missing if m in BY_NAME] or list(REQUIRED_PERMISSIONS)
    subject = subject_flag(identity)
    commands = []
    for resource, verbs in verbs_by_resource(wanted).items():
        role = "-".join((ROLE_PREFIX, resource.replace("/", "-"), *verbs))
        kubectl = f"kubectl -n {namespace}"
        commands.append(
            f"{kubectl} create role {role} --verb={','.join(verbs)} --resource={resource} "
            f"--dry-run=client -o yaml | kubectl apply -f - && ({kubectl} create rolebinding {role} "
            f"--role={role} {subject} || {kubectl} set subject rolebinding {role} {subject})"
        )
    return " && ".join(commands)


def invalid_name_fix(name: str) -> str:
    candidate = re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-")[:63].strip("-")
    suggestion = f", e.g. '{candidate}'" if candidate and candidate != name else ""
    return f"set metadata.namespace in the task's executor_config pod_override to a valid name{suggestion}"
