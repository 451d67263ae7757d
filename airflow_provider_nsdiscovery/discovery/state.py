"""The namespace state table: one state and one human-readable reason per namespace.

Every decision the provider makes about a namespace (watch it, launch into it, refuse a task)
is read from a :class:`NamespaceStatus`, so logs, CLI output and task failures all say the same
thing. :func:`decide` is a pure function of what was observed, which keeps the state machine
testable without an API server.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum

from airflow_provider_nsdiscovery.config import SECTION, DiscoverySettings
from airflow_provider_nsdiscovery.discovery.tenancy import TenantPolicy

_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


class State(str, Enum):
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
        return "list pods" not in self.missing and "watch pods" not in self.missing


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
    name: str
    state: State
    reason: str
    fix: str = ""
    checked_at: float = field(default_factory=time.time)
    active_pods: int = 0
    tenancy: TenantPolicy = field(default_factory=TenantPolicy)

    @property
    def watched(self) -> bool:
        """Whether a pod watcher should run: while tasks may start there, or still run there."""
        return self.state in (State.PERMITTED, State.DRAINING)

    @property
    def message(self) -> str:
        text = f"namespace '{self.name}' {_HEADLINES[self.state]}: {self.reason}"
        return f"{text} ({self.fix})" if self.fix else text


def is_valid_namespace_name(name: str) -> bool:
    return _DNS1123_LABEL.fullmatch(name) is not None


def decide(
    name: str,
    settings: DiscoverySettings,
    observation: Observation | None,
    access: AccessDecision | None,
    *,
    previous: NamespaceStatus | None = None,
    active_pods: int = 0,
) -> NamespaceStatus:
    """The state of ``name`` given the latest observation and access review.

    ``observation`` None means the namespace was never seen (not selected, or not yet listed);
    ``access`` None means no review has completed yet. ``previous`` and ``active_pods`` turn a
    namespace that stops being usable into ``draining`` while pods launched there still run.
    """
    status = _decide_base(name, settings, observation, access)
    was_in_use = previous is not None and previous.state in (State.PERMITTED, State.DRAINING)
    if status.state is State.PENDING and previous is not None and was_in_use:
        return previous  # a review in flight must not stop the watcher of tasks running there
    can_drain = status.state in (State.NOT_SELECTED, State.TERMINATING, State.ABSENT) or (
        status.state is State.FORBIDDEN and access is not None and access.can_watch
    )
    # One more poll after the last pod finished: its final watch event is then surely delivered.
    just_finished = previous is not None and previous.state is State.DRAINING and previous.active_pods > 0
    if was_in_use and can_drain and (active_pods > 0 or just_finished):
        pods = f"{active_pods} pod{'s' if active_pods != 1 else ''}"
        return NamespaceStatus(
            name,
            State.DRAINING,
            f"{_HEADLINES[status.state].removeprefix('is ')}: {status.reason}; no new tasks start here "
            f"and its watcher stays until {pods} launched here finish",
            status.fix,
            active_pods=active_pods,
        )
    return status


def _decide_base(
    name: str,
    settings: DiscoverySettings,
    observation: Observation | None,
    access: AccessDecision | None,
) -> NamespaceStatus:
    if not is_valid_namespace_name(name):
        return NamespaceStatus(
            name,
            State.INVALID_NAME,
            "a namespace must be a DNS-1123 label: 1-63 lowercase letters, digits or '-', "
            "starting and ending with a letter or digit",
            f"set metadata.namespace in the task's executor_config pod_override to a valid name"
            f"{_suggest_name(name)}",
        )
    if name == settings.home_namespace:
        return NamespaceStatus(name, State.PERMITTED, "it is the executor's home namespace")
    if name in settings.exclude_namespaces:
        return NamespaceStatus(
            name,
            State.EXCLUDED,
            f"it is listed in [{SECTION}] exclude_namespaces, so it is never used, labelled or not",
            f"run the task in another namespace, or remove '{name}' from [{SECTION}] exclude_namespaces",
        )
    if observation is not None and observation.exists is False:
        return NamespaceStatus(
            name,
            State.ABSENT,
            "the API server has no namespace of that name",
            f"kubectl create namespace {name} && {_label_fix(name, settings)}",
        )
    if observation is not None and observation.terminating:
        return NamespaceStatus(
            name,
            State.TERMINATING,
            "it is being deleted",
            "wait until it is gone and recreate it, or run the task in another namespace",
        )
    if observation is None:
        return NamespaceStatus(
            name,
            State.NOT_SELECTED,
            f"it does not match label selector '{settings.selector.text}'",
            _label_fix(name, settings),
        )
    if observation.exists is not None:
        failure = settings.selector.first_failure(observation.labels)
        if failure is not None:
            reason, fix = failure.explain(name, observation.labels)
            return NamespaceStatus(name, State.NOT_SELECTED, reason, fix)
    if access is None:
        return NamespaceStatus(name, State.PENDING, "its access review has not finished yet")
    if not access.allowed:
        return NamespaceStatus(
            name,
            State.FORBIDDEN,
            f"scheduler identity {access.identity} lacks: {', '.join(access.missing)} in {name}",
            _rbac_fix(name, access.identity),
            checked_at=access.checked_at,
        )
    selected = (
        f"selected by '{settings.selector.text}'"
        if observation.exists
        else f"listed in [{SECTION}] candidate_namespaces"
    )
    return NamespaceStatus(
        name,
        State.PERMITTED,
        f"{selected} and {access.identity} may manage pods there",
        checked_at=access.checked_at,
        tenancy=observation.tenancy,
    )


def _label_fix(name: str, settings: DiscoverySettings) -> str:
    labels = [f"{r.key}={r.values[0]}" for r in settings.selector.requirements if r.operator in ("=", "in")]
    if labels:
        return f"kubectl label namespace {name} {' '.join(labels)}"
    return f"label namespace {name} so that it matches '{settings.selector.text}'"


def _rbac_fix(name: str, identity: str) -> str:
    prefix = "system:serviceaccount:"
    if identity.startswith(prefix):
        subject = f"--serviceaccount={identity.removeprefix(prefix)}"
    else:
        subject = f"--user={identity}"
    return (
        f"kubectl -n {name} create role airflow-task-pods --verb=create,get,list,watch,patch,delete "
        f"--resource=pods,pods/log && kubectl -n {name} create rolebinding airflow-task-pods "
        f"--role=airflow-task-pods {subject}"
    )


def _suggest_name(name: str) -> str:
    candidate = re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-")[:63].strip("-")
    return f", e.g. '{candidate}'" if candidate and candidate != name else ""


class StateTable:
    """Thread-safe current status of every namespace the provider knows about.

    Written by discovery threads, read by the scheduler loop and by pre-launch validation, which
    is why reads return immutable snapshots instead of handing out the dict.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rows: dict[str, NamespaceStatus] = {}

    def get(self, name: str) -> NamespaceStatus | None:
        with self._lock:
            return self._rows.get(name)

    def put(self, status: NamespaceStatus) -> NamespaceStatus | None:
        """Store ``status``; returns the status it replaced."""
        with self._lock:
            previous = self._rows.get(status.name)
            self._rows[status.name] = status
            return previous

    def snapshot(self) -> dict[str, NamespaceStatus]:
        with self._lock:
            return dict(self._rows)

    def watched(self) -> set[str]:
        with self._lock:
            return {name for name, status in self._rows.items() if status.watched}
