"""What the CLI prints, as pure functions of namespace statuses.

Kept apart from the commands so that the text an operator reads, and the YAML they paste into
``kubectl apply``, is tested without an API server or an Airflow installation.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime

import yaml

from airflow_provider_nsdiscovery.config import SECTION, DiscoverySettings
from airflow_provider_nsdiscovery.discovery.remedies import RBAC_GROUP, rbac_subject, role_rules
from airflow_provider_nsdiscovery.discovery.status import NamespaceStatus, State

ROLE_NAME = "airflow-task-pods"
"""The name the README and the kubectl fixes use, so that applying a suggested manifest replaces
an incomplete Role of that name instead of adding a second one. deploy/ names its Roles per Helm
release instead (airflow_provider_nsdiscovery/deploy.py), as two releases may share a namespace."""

CANDIDATE_MODE = "candidate-namespaces"
TABLE_OUTPUTS = ("table", "plain")

Row = dict[str, object]


def usable(status: NamespaceStatus) -> bool:
    """Only ``permitted`` takes new tasks: ``draining`` is watched but refuses launches."""
    return status.state is State.PERMITTED


def timestamp_text(epoch_seconds: float) -> str:
    """UTC, to the second: operators compare it with API server audit logs, which are UTC."""
    return datetime.fromtimestamp(epoch_seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def namespace_rows(statuses: Iterable[NamespaceStatus], *, with_fix: bool) -> list[Row]:
    """One row per namespace, sorted by name so that repeated runs can be diffed.

    The fix is left out of tables, where a long kubectl command would wrap into unusable
    pieces; machine-readable output carries it.
    """
    rows: list[Row] = []
    for status in sorted(statuses, key=lambda s: s.name):
        row: Row = {
            "namespace": status.name,
            "state": status.state.value,
            "reason": status.reason,
            "watcher": status.watched,
            "last_checked": timestamp_text(status.checked_at),
        }
        if with_fix:
            row["fix"] = status.fix or None
        rows.append(row)
    return rows


def structured_text(rows: Sequence[Mapping[str, object]], output: str) -> str:
    """``json`` or ``yaml`` with each value keeping its type.

    Airflow's console turns every value into text first, so ``usable`` would read ``"False"``,
    which a script testing the field takes for true.
    """
    if output == "json":
        return json.dumps(list(rows), indent=2)
    if output == "yaml":
        return str(yaml.safe_dump([dict(row) for row in rows], sort_keys=False)).rstrip("\n")
    raise ValueError(f"not a structured output: {output!r}")


def rbac_manifest(namespace: str, identity: str, missing: Sequence[str]) -> str:
    """A Role and RoleBinding that give ``identity`` what the executor needs in ``namespace``.

    The Role grants every required verb, not only the missing ones: it replaces a partial Role
    of the same name rather than depending on whatever else happens to be bound today.
    """
    role = {
        "apiVersion": f"{RBAC_GROUP}/v1",
        "kind": "Role",
        "metadata": {"name": ROLE_NAME, "namespace": namespace},
        "rules": role_rules(),
    }
    binding = {
        "apiVersion": f"{RBAC_GROUP}/v1",
        "kind": "RoleBinding",
        "metadata": {"name": ROLE_NAME, "namespace": namespace},
        "roleRef": {"apiGroup": RBAC_GROUP, "kind": "Role", "name": ROLE_NAME},
        "subjects": [rbac_subject(identity)],
    }
    header = (
        f"# {identity} lacks in namespace {namespace}: {', '.join(missing)}\n"
        "# Apply with: kubectl apply -f -\n"
    )
    return header + str(yaml.safe_dump_all([role, binding], sort_keys=False))


def accepted_tasks(status: NamespaceStatus) -> str:
    """Which tasks a namespace takes, since its owners' annotations can refuse some at launch
    (state ``denied``) even where ``check`` answers "usable"."""
    limits = []
    if status.tenancy.allowed_dags:
        limits.append(f"DAGs matching {', '.join(status.tenancy.allowed_dags)}")
    if status.tenancy.allowed_teams:
        limits.append(f"teams {', '.join(status.tenancy.allowed_teams)}")
    return "; ".join(limits) or "all"


def check_report(status: NamespaceStatus, *, identity: str, missing: Sequence[str]) -> Row:
    """Everything ``check`` knows about one namespace, for json/yaml output and for the table.

    ``missing`` may be non-empty for a namespace that is not selected yet: labelling it alone
    would not make it usable, and saying so now saves the operator a second round trip. It may
    also be non-empty for the home namespace, which the executor uses without a review: its
    state stays ``permitted``, but pods there would be refused, so it is not usable.
    """
    can_start = usable(status) and not missing
    return {
        "namespace": status.name,
        "usable": can_start,
        "state": status.state.value,
        "reason": status.reason,
        "fix": status.fix or None,
        "accepts": accepted_tasks(status) if can_start else None,
        "identity": identity,
        "missing": list(missing),
        "manifest": rbac_manifest(status.name, identity, missing) if missing else None,
    }


def report_properties(report: Mapping[str, object]) -> list[Row]:
    """The short fields of a report as property/value rows, the way ``airflow dags details``
    shows one object as a table; fix and manifest are printed below it, unwrapped."""
    keys = ("namespace", "usable", "state", "reason", "accepts", "identity")
    rows: list[Row] = [
        {"property_name": key, "property_value": report[key]} for key in keys if report[key] is not None
    ]
    missing = report.get("missing")
    if isinstance(missing, list) and missing:
        rows.append({"property_name": "missing", "property_value": ", ".join(map(str, missing))})
    return rows


def report_followup(report: Mapping[str, object]) -> str:
    """The copy-pasteable part of a report: the fix command and the RBAC manifest, if any."""
    parts: list[str] = []
    if report.get("fix"):
        parts.append(f"fix: {report['fix']}")
    if report.get("manifest"):
        if report.get("state") == State.PERMITTED.value:
            parts.append(
                "the executor uses this namespace without a review, but would be refused pods there:"
            )
        elif report.get("state") != State.FORBIDDEN.value:
            parts.append("it also needs RBAC before tasks can run there:")
        parts.append(f"\n{report['manifest']}".rstrip("\n"))
    return "\n".join(parts)


def source_summary(identity: str, mode: str, settings: DiscoverySettings) -> str:
    """One line saying whose view this is and where the namespaces came from.

    The answers are only the scheduler's if ``identity`` is the scheduler's: run from a laptop
    with an admin kubeconfig, everything would look permitted.
    """
    if mode == CANDIDATE_MODE:
        candidates = ", ".join(settings.candidate_namespaces) or "none configured"
        return (
            f"as {identity}, which may not list namespaces cluster-wide: using [{SECTION}] "
            f"candidate_namespaces ({candidates}); home namespace '{settings.home_namespace}'"
        )
    return (
        f"as {identity}: namespaces selected by '{settings.label_selector}'; "
        f"home namespace '{settings.home_namespace}'"
    )
