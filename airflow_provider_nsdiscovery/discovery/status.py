"""What is known about a namespace and what was decided about it: the types, nothing else.

Every decision the provider makes about a namespace (watch it, launch into it, refuse a task,
fail a task) is read from a :class:`NamespaceStatus`, so logs, CLI output and task failures all
say the same thing in the same words.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from airflow_provider_nsdiscovery.discovery.permissions import WATCH_PERMISSIONS
from airflow_provider_nsdiscovery.discovery.tenancy import TenantPolicy

_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


class State(StrEnum):
    PERMITTED = "permitted"
    DRAINING = "draining"
    PENDING = "pending"
    FORBIDDEN = "forbidden"
    NOT_SELECTED = "not-selected"
    TERMINATING = "terminating"
    EXCLUDED = "excluded"
    ABSENT = "absent"
    INVALID_NAME = "invalid-name"
    DENIED = "denied"

    @property
    def headline(self) -> str:
        return _HEADLINES[self]


_HEADLINES = {
    State.PERMITTED: "is permitted",
    State.DRAINING: "is draining",
    State.PENDING: "is still being reviewed",
    State.FORBIDDEN: "is forbidden",
    State.NOT_SELECTED: "is not selected",
    State.TERMINATING: "is terminating",
    State.EXCLUDED: "is excluded",
    State.ABSENT: "does not exist",
    State.INVALID_NAME: "is not a valid namespace name",
    State.DENIED: "does not accept this task",
}


@dataclass(frozen=True)
class AccessDecision:
    """Result of access reviews for one namespace, made with the scheduler's own identity."""

    identity: str
    missing: tuple[str, ...]  # e.g. ("watch pods", "get pods/log"); empty means allowed
    checked_at: float = field(default_factory=time.time)

    @property
    def allowed(self) -> bool:
        return not self.missing

    @property
    def can_watch(self) -> bool:
        return not {str(p) for p in WATCH_PERMISSIONS} & set(self.missing)


@dataclass(frozen=True)
class Observation:
    """What the API server told us about a namespace object.

    ``exists`` is None when the scheduler may not read the namespace (candidate-list mode): it is
    then taken to be selected because an operator listed it, and access reviews decide.
    """

    exists: bool | None
    labels: Mapping[str, str] = field(default_factory=dict)
    terminating: bool = False
    tenancy: TenantPolicy = field(default_factory=TenantPolicy)


@dataclass(frozen=True)
class NamespaceStatus:
    """One namespace's state with its reason and fix.

    ``tasks`` counts the executor's own tasks placed there (from its task-to-namespace map, not
    from a pod LIST). ``confirmed`` is set on a forbidden namespace once a second review, one
    re-check interval after the first, still found access missing: only then are tasks still
    placed there given up on, so a binding that is re-created in time costs nothing.
    """

    name: str
    state: State
    reason: str
    fix: str = ""
    checked_at: float = field(default_factory=time.time)
    tasks: int = 0
    tenancy: TenantPolicy = field(default_factory=TenantPolicy)
    confirmed: bool = False

    @property
    def watched(self) -> bool:
        """Whether a pod watcher should run: while tasks may start there, or still run there."""
        return self.state in (State.PERMITTED, State.DRAINING)

    @property
    def gives_up_tasks(self) -> bool:
        """Whether tasks still placed here can no longer be followed and must be failed.

        Pending is an unknown, not an answer; a forbidden namespace waits for its confirmation.
        """
        if self.watched or self.state is State.PENDING:
            return False
        return self.state is not State.FORBIDDEN or self.confirmed

    @property
    def summary(self) -> str:
        """What is decided and why, without the fix (a task log gives the fix a line of its own)."""
        return f"namespace '{self.name}' {self.state.headline}: {self.reason}"

    @property
    def message(self) -> str:
        return f"{self.summary} ({self.fix})" if self.fix else self.summary


def is_valid_namespace_name(name: str) -> bool:
    return _DNS1123_LABEL.fullmatch(name) is not None
