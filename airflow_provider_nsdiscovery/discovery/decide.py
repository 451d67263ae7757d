"""The namespace state machine: a pure function of what was observed.

Keeping :func:`decide` free of I/O, clocks and locks is what lets the controller call it as
often as it likes and lets tests enumerate every transition without an API server.
"""

from __future__ import annotations

from airflow_provider_nsdiscovery.config import SECTION, DiscoverySettings
from airflow_provider_nsdiscovery.discovery import remedies
from airflow_provider_nsdiscovery.discovery.status import (
    AccessDecision,
    NamespaceStatus,
    Observation,
    State,
    is_valid_namespace_name,
)

_DRAINABLE = (State.NOT_SELECTED, State.TERMINATING, State.EXCLUDED)


def decide(
    name: str,
    settings: DiscoverySettings,
    observation: Observation | None,
    access: AccessDecision | None,
    *,
    previous: NamespaceStatus | None = None,
    tasks: int = 0,
    unknown: str = "",
) -> NamespaceStatus:
    """The state of ``name`` given the latest observation and access review.

    ``observation`` None means the namespace was never seen (not selected, or not yet listed);
    ``access`` None means no review has completed yet, and ``unknown`` says why when a review
    failed for a transient reason. ``tasks`` is how many of the executor's own tasks are placed
    in ``name``: while any are, a namespace that stops being usable drains (keeps its watcher,
    takes no new tasks) instead of being dropped.
    """
    status = _decide_base(name, settings, observation, access, unknown)
    if status.state is State.PENDING and previous is not None and previous.watched:
        return previous  # an answer still owed must not stop the watcher of tasks running there
    if tasks <= 0 or status.state is State.PERMITTED:
        return status
    can_watch = access is None or access.can_watch
    if status.state in _DRAINABLE or (status.state is State.FORBIDDEN and can_watch):
        return NamespaceStatus(
            name,
            State.DRAINING,
            f"{status.state.headline.removeprefix('is ')}: {status.reason}; no new tasks start here "
            f"and its watcher stays until {_tasks_phrase(tasks)}",
            status.fix,
            tasks=tasks,
        )
    return NamespaceStatus(
        name, status.state, status.reason, status.fix, status.checked_at, tasks, status.tenancy
    )


def _tasks_phrase(tasks: int) -> str:
    if tasks == 1:
        return "the 1 task launched here finishes"
    return f"the {tasks} tasks launched here finish"


def _decide_base(
    name: str,
    settings: DiscoverySettings,
    observation: Observation | None,
    access: AccessDecision | None,
    unknown: str,
) -> NamespaceStatus:
    if not is_valid_namespace_name(name):
        return NamespaceStatus(
            name,
            State.INVALID_NAME,
            "a namespace must be a DNS-1123 label: 1-63 lowercase letters, digits or '-', "
            "starting and ending with a letter or digit",
            remedies.invalid_name_fix(name),
        )
    if name == settings.home_namespace:
        if access is not None and not access.allowed:
            return _forbidden(name, access)
        return NamespaceStatus(name, State.PERMITTED, "it is the executor's home namespace")
    if name in settings.exclude_namespaces:
        return NamespaceStatus(
            name,
            State.EXCLUDED,
            f"it is listed in [{SECTION}] exclude_namespaces, so it is never used, labelled or not",
            remedies.exclusion_fix(name),
        )
    if observation is not None and observation.exists is False:
        return NamespaceStatus(
            name,
            State.ABSENT,
            "the API server has no namespace of that name",
            remedies.create_namespace_fix(name, settings),
        )
    if observation is not None and observation.terminating:
        return NamespaceStatus(name, State.TERMINATING, "it is being deleted", remedies.TERMINATING_FIX)
    if observation is None:
        return NamespaceStatus(
            name,
            State.NOT_SELECTED,
            f"it does not match label selector '{settings.selector.text}'",
            remedies.label_fix(name, settings),
        )
    if observation.exists is not None:
        failure = settings.selector.first_failure(observation.labels)
        if failure is not None:
            reason, fix = failure.explain(name, observation.labels)
            return NamespaceStatus(name, State.NOT_SELECTED, reason, fix)
    if access is None:
        reason = (
            f"its access review failed ({unknown}); retrying"
            if unknown
            else ("its access review has not finished yet")
        )
        return NamespaceStatus(name, State.PENDING, reason)
    if not access.allowed:
        return _forbidden(name, access)
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


def _forbidden(name: str, access: AccessDecision) -> NamespaceStatus:
    return NamespaceStatus(
        name,
        State.FORBIDDEN,
        f"scheduler identity {access.identity} lacks: {', '.join(access.missing)} in {name}",
        remedies.rbac_fix(name, access.identity, access.missing),
        checked_at=access.checked_at,
    )
