"""The permissions the executor needs in every namespace it launches pods in: their one home.

Access reviews check exactly these, remedy texts grant exactly these, and the CLI's Role
manifests are built from them; nothing else spells out a verb.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True)
class Permission:
    verb: str
    resource: str
    subresource: str = ""

    @property
    def resource_path(self) -> str:
        return f"{self.resource}/{self.subresource}" if self.subresource else self.resource

    def __str__(self) -> str:
        return f"{self.verb} {self.resource_path}"


REQUIRED_PERMISSIONS: tuple[Permission, ...] = (
    *(Permission(verb, "pods") for verb in ("create", "get", "list", "watch", "patch", "delete")),
    Permission("get", "pods", "log"),
)

NAMESPACE_DISCOVERY_PERMISSIONS: tuple[Permission, ...] = tuple(
    Permission(verb, "namespaces") for verb in ("get", "list", "watch")
)
"""Cluster-wide: discovery lists and watches namespaces by label, and ``check`` reads one by name.
Without them the executor falls back to candidate_namespaces (deploy/cluster-role.yaml grants them)."""

LOG_READER_PERMISSIONS: tuple[Permission, ...] = (
    Permission("list", "pods"),
    Permission("get", "pods", "log"),
)
"""What the API server needs in a namespace to show a running task's log: the executor's
``get_task_log`` finds the pod by its labels, then reads its log. The Helm chart grants these in the
release namespace only, so without them live logs of tasks in team namespaces fail in the UI."""

WORKER_PERMISSIONS: tuple[Permission, ...] = (
    *(Permission(verb, "pods") for verb in ("create", "get", "list", "watch", "patch", "delete")),
    Permission("get", "pods", "log"),
    *(Permission(verb, "pods", "exec") for verb in ("create", "get")),
    Permission("list", "events"),
)
"""What the Helm chart's pod-launcher Role gives workers under KubernetesExecutor, granted to task
pods in the namespace they run in, so that a task (KubernetesPodOperator) may start pods next to
itself and nowhere else. The chart grants it for executors it knows by name only."""

WATCH_PERMISSIONS: tuple[Permission, ...] = (Permission("list", "pods"), Permission("watch", "pods"))
"""What a pod watcher needs; without these a namespace cannot even be drained."""

RBAC_WATCH_RULE: dict[str, list[str]] = {
    "apiGroups": ["rbac.authorization.k8s.io"],
    "resources": ["rolebindings", "roles", "clusterrolebindings", "clusterroles"],
    "verbs": ["list", "watch"],
}
"""Optional, cluster-wide and read-only: lets discovery see access changes as they happen
(discovery/rbac_watch.py) instead of at the next periodic re-check. deploy/rbac-watch.yaml grants
exactly this."""

BY_NAME: dict[str, Permission] = {str(p): p for p in REQUIRED_PERMISSIONS}


class RbacRule(Protocol):
    """One resource rule of a rules review: a ``V1ResourceRule`` or a :class:`ResourceRule`."""

    @property
    def api_groups(self) -> Sequence[str] | None: ...
    @property
    def verbs(self) -> Sequence[str] | None: ...
    @property
    def resources(self) -> Sequence[str] | None: ...
    @property
    def resource_names(self) -> Sequence[str] | None: ...


@dataclass(frozen=True)
class ResourceRule:
    """A resource rule read from the review's JSON as it is: building the client's models for every
    review cost more CPU than the rest of the review (see access.py)."""

    api_groups: tuple[str, ...] = ()
    verbs: tuple[str, ...] = ()
    resources: tuple[str, ...] = ()
    resource_names: tuple[str, ...] = ()

    @classmethod
    def from_json(cls, rule: Mapping[str, Any]) -> ResourceRule:
        return cls(
            tuple(rule.get("apiGroups") or ()),
            tuple(rule.get("verbs") or ()),
            tuple(rule.get("resources") or ()),
            tuple(rule.get("resourceNames") or ()),
        )


def rule_grants(rule: RbacRule, permission: Permission) -> bool:
    """Whether one RBAC rule grants ``permission``, with the API server's wildcard semantics."""
    if rule.resource_names:
        return False  # a rule limited to named pods never allows create or list
    if not {"", "*"} & set(rule.api_groups or ()):
        return False
    if not {permission.verb, "*"} & set(rule.verbs or ()):
        return False
    resources = set(rule.resources or ())
    if permission.subresource:
        return bool({"*", permission.resource_path, f"*/{permission.subresource}"} & resources)
    return bool({"*", permission.resource} & resources)
