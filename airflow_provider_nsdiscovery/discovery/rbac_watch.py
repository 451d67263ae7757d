"""Access changes seen as they happen: watches on the RBAC objects that can grant pod rights.

Polling alone notices a removed RoleBinding only at the namespace's next re-check (up to
``access_recheck_interval``) and costs one review per namespace per interval, forever. Where the
scheduler may list and watch Roles, RoleBindings, ClusterRoles and ClusterRoleBindings, a change is
seen within milliseconds and only the namespaces it can affect are reviewed again: a Role or
RoleBinding affects its own namespace, a cluster-scoped object every namespace. Changes that
cannot affect us are skipped: a role whose rules never mention pods, a binding whose subjects
never name us. Periodic re-checks stay as a slow backstop for what no watch shows (webhook
authorizers, group membership).
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from kubernetes import client

from airflow_provider_nsdiscovery.discovery.permissions import RBAC_WATCH_RULE
from airflow_provider_nsdiscovery.discovery.remedies import RBAC_WATCH_REMEDY, rbac_subject
from airflow_provider_nsdiscovery.discovery.source import Reflector

log = logging.getLogger(__name__)

AccessChanged = Callable[[str | None, str], None]
"""Called with the namespace a change can affect (None: every namespace) and what changed."""


def grants_pods(obj: Mapping[str, Any]) -> bool:
    """Whether a Role's or ClusterRole's rules can say anything about pods (wildcards included)."""
    for rule in obj.get("rules") or []:
        groups = rule.get("apiGroups") or []
        resources = rule.get("resources") or []
        if ("" in groups or "*" in groups) and any(r == "*" or r.split("/")[0] == "pods" for r in resources):
            return True
    return False


def names_identity(obj: Mapping[str, Any], identity: str | None) -> bool:
    """Whether a binding's subjects can include ``identity``: by name, or by any group (the groups
    a user is in are not known here, so a group binding always counts)."""
    us = rbac_subject(identity) if identity is not None else None
    for subject in obj.get("subjects") or []:
        if us is None or subject.get("kind") == "Group":
            return True
        if all(subject.get(field) == value for field, value in us.items() if field != "apiGroup"):
            return True
    return False


@dataclass(frozen=True)
class _Kind:
    what: str
    list_call: str
    namespaced: bool
    binding: bool


_LIST_CALLS = {
    "rolebindings": "list_role_binding_for_all_namespaces",
    "roles": "list_role_for_all_namespaces",
    "clusterrolebindings": "list_cluster_role_binding",
    "clusterroles": "list_cluster_role",
}
_KINDS = tuple(
    _Kind(what, _LIST_CALLS[what], not what.startswith("cluster"), what.endswith("bindings"))
    for what in RBAC_WATCH_RULE["resources"]
)
_BY_WHAT = {kind.what: kind for kind in _KINDS}


class RbacWatch:
    """One :class:`Reflector` per RBAC kind; each change that can affect us calls ``on_change``.

    After a re-list (a 410, or a reconnect that lost the watch) the snapshot is compared with what
    was seen before, so a change made while the watch was down is reported like an event. The
    first list of each kind only records what exists: the reviews that follow discovery see it.
    """

    def __init__(
        self,
        api_client: client.ApiClient,
        on_change: AccessChanged,
        identity: Callable[[], str | None],
        *,
        retry_refused_after: float,
        on_request: Callable[[str], None] = lambda kind: None,
    ) -> None:
        rbac = client.RbacAuthorizationV1Api(api_client)
        self._on_change = on_change
        self._identity = identity
        self._retry_refused_after = retry_refused_after
        self._refused: set[str] = set()
        self._retry_at: dict[str, float] = {}
        # Per object: its resourceVersion and whether it could affect us, to diff re-lists and
        # to report a change that makes an object stop affecting us (a rule or subject removed).
        self._seen: dict[str, dict[tuple[str, str], tuple[str, bool]]] = {kind.what: {} for kind in _KINDS}
        self._listed_once: set[str] = set()
        self.reflectors = [
            Reflector(
                kind.what,
                getattr(rbac, kind.list_call),
                functools.partial(self.relisted, kind.what),
                functools.partial(self.observed, kind.what),
                on_request=on_request,
                on_open=functools.partial(self._refused.discard, kind.what),
            )
            for kind in _KINDS
        ]

    @property
    def watching(self) -> bool:
        """Whether every kind is listed and followed, so a change anywhere would be seen."""
        return not self._refused and all(reflector.listed for reflector in self.reflectors)

    def loops(self, pause: Callable[[float], object]) -> dict[str, Callable[[], None]]:
        """One step function per kind, for the caller's supervised loops."""
        return {
            f"nsd-rbac-watch-{reflector.what}": functools.partial(self._step, reflector, pause)
            for reflector in self.reflectors
        }

    def stop(self) -> None:
        for reflector in self.reflectors:
            reflector.stop()

    def _step(self, reflector: Reflector, pause: Callable[[float], object]) -> None:
        """A 403 is an answer, not a failure: without the rights to watch RBAC objects, access
        changes are left to the periodic re-check, and the watch is tried again much later. The
        wait is a step of its own, so the loop counts as healthy while it waits."""
        wait = self._retry_at.get(reflector.what, 0.0) - time.monotonic()
        if wait > 0:
            pause(wait)
            return
        try:
            reflector.sync_once()
        except client.ApiException as err:
            if err.status != HTTPStatus.FORBIDDEN:
                raise
            was_watching = self.watching
            reflector.resource_version = None
            if reflector.what not in self._refused:
                self._refused.add(reflector.what)
                log.info(
                    "may not watch %s (%s %s): access changes are noticed by the periodic re-check "
                    "instead of at once; %s",
                    reflector.what,
                    err.status,
                    err.reason,
                    RBAC_WATCH_REMEDY,
                )
            if was_watching:
                self._on_change(None, f"watching {reflector.what} was refused")
            self._retry_at[reflector.what] = time.monotonic() + self._retry_refused_after

    def _affects_us(self, kind: _Kind, obj: Mapping[str, Any]) -> bool:
        return names_identity(obj, self._identity()) if kind.binding else grants_pods(obj)

    def relisted(self, what: str, items: list[dict[str, Any]]) -> None:
        """Every object of one kind after a (re-)list; changes since the last list are reported."""
        kind = _BY_WHAT[what]
        before = self._seen[kind.what]
        now = {_key(obj): (obj["metadata"]["resourceVersion"], self._affects_us(kind, obj)) for obj in items}
        self._seen[kind.what] = now
        if kind.what not in self._listed_once:
            self._listed_once.add(kind.what)
            return
        for key in before.keys() | now.keys():
            old, new = before.get(key), now.get(key)
            if old != new and ((old is not None and old[1]) or (new is not None and new[1])):
                self._report(kind, key, "changed while the watch was down")

    def observed(self, what: str, event: str, obj: dict[str, Any]) -> None:
        """One watch event of one kind; reported if the object affects us, before or after."""
        kind = _BY_WHAT[what]
        key = _key(obj)
        seen = self._seen[kind.what]
        old = seen.pop(key, None)
        affects = self._affects_us(kind, obj)
        if event != "DELETED":
            seen[key] = (obj["metadata"]["resourceVersion"], affects)
        if affects or (old is not None and old[1]):
            self._report(kind, key, event.lower())

    def _report(self, kind: _Kind, key: tuple[str, str], what_happened: str) -> None:
        namespace, name = key
        where = f"{namespace}/{name}" if kind.namespaced else name
        self._on_change(namespace if kind.namespaced else None, f"{kind.what[:-1]} {where} {what_happened}")


def _key(obj: Mapping[str, Any]) -> tuple[str, str]:
    metadata = obj["metadata"]
    return str(metadata.get("namespace") or ""), str(metadata["name"])
