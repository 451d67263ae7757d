"""Pre-launch namespace check: may a pod be created where it says it goes?

It runs on the fully built pod (pod template, executor_config pod_override and the pod mutation
hook already applied), because any of those can set the namespace and only the final one counts.
"""

from __future__ import annotations

from collections.abc import Callable

from kubernetes.client import models as k8s

from airflow_provider_nsdiscovery.discovery.status import NamespaceStatus, State


class NamespaceRefusal(Exception):
    """The pod's namespace may not be used; ``status.message`` says why and how to fix it."""

    def __init__(self, status: NamespaceStatus) -> None:
        super().__init__(status.message)
        self.status = status


def check_pod_namespace(
    pod: k8s.V1Pod,
    lookup: Callable[[str], NamespaceStatus],
    *,
    dag_id: str | None = None,
    team: str | None = None,
) -> NamespaceStatus:
    """Return the permitted status of the pod's namespace, or raise :class:`NamespaceRefusal`.

    The namespace must be usable at all (its state) and must accept this task: its owners may
    limit it to some DAGs or Airflow teams with annotations (see ``discovery.tenancy``). The DAG
    and team are the task's own identity as the scheduler knows it, never read from the pod: a
    DAG author writes pod_override, so anything in the pod's metadata may be spoofed.
    """
    metadata = pod.metadata
    namespace = (metadata.namespace if metadata else None) or ""
    status = lookup(namespace)
    if status.state is not State.PERMITTED:
        raise NamespaceRefusal(status)
    denied = status.tenancy.refusal(namespace, dag_id, team)
    if denied is not None:
        raise NamespaceRefusal(NamespaceStatus(namespace, State.DENIED, *denied))
    return status
