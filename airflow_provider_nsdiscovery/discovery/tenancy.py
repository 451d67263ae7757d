"""Tenant policy set by a namespace's owners: which DAGs and Airflow teams may use it.

A namespace that is labelled and granted is open to every DAG of the Airflow instance; a team
that shares Airflow but not its namespace narrows that with annotations on its namespace. The
check is per task (it depends on the DAG), so it runs at pre-launch validation, never in the
state table.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from fnmatch import fnmatchcase

from airflow_provider_nsdiscovery.config import split_list

ALLOWED_DAGS = "airflow.apache.org/allowed-dags"
ALLOWED_TEAMS = "airflow.apache.org/allowed-teams"
ANNOTATIONS = (ALLOWED_DAGS, ALLOWED_TEAMS)


@dataclass(frozen=True)
class TenantPolicy:
    """Empty tuples mean "no restriction"; patterns are shell globs matched case-sensitively."""

    allowed_dags: tuple[str, ...] = ()
    allowed_teams: tuple[str, ...] = ()

    @classmethod
    def from_annotations(cls, annotations: Mapping[str, str]) -> TenantPolicy:
        return cls(
            split_list(annotations.get(ALLOWED_DAGS, "")), split_list(annotations.get(ALLOWED_TEAMS, ""))
        )

    def refusal(self, namespace: str, dag_id: str | None, team: str | None) -> tuple[str, str] | None:
        """Why a task of ``dag_id`` (run by ``team``) may not use ``namespace``, and the fix."""
        if self.allowed_dags and not any(fnmatchcase(dag_id or "", p) for p in self.allowed_dags):
            return (
                f"its annotation {ALLOWED_DAGS} allows only DAGs matching {', '.join(self.allowed_dags)}, "
                f"not '{dag_id}'",
                f"kubectl annotate namespace {namespace} --overwrite "
                f"{ALLOWED_DAGS}={','.join((*self.allowed_dags, dag_id or ''))}, or run the task elsewhere",
            )
        if self.allowed_teams and team not in self.allowed_teams:
            who = f"team '{team}'" if team else "tasks of no Airflow team"
            teams = ", ".join(self.allowed_teams)
            return (
                f"its annotation {ALLOWED_TEAMS} allows only teams {teams}, not {who}",
                f"run the DAG under one of those teams, or add its team to {ALLOWED_TEAMS} of {namespace}",
            )
        return None
