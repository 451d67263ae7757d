"""The upstream AirflowKubernetesScheduler with watchers and pod launches driven by discovery."""

from __future__ import annotations

import copy
import random
from typing import TYPE_CHECKING, Any

from airflow.providers.cncf.kubernetes.exceptions import PodReconciliationError
from airflow.providers.cncf.kubernetes.executors.kubernetes_executor_types import ALL_NAMESPACES
from airflow.providers.cncf.kubernetes.executors.kubernetes_executor_utils import (
    AirflowKubernetesScheduler,
    KubernetesJobWatcher,
    ResourceVersion,
)
from kubernetes import client

from airflow_provider_nsdiscovery.discovery.state import NamespaceStatus
from airflow_provider_nsdiscovery.executors.pod_watcher import ThreadedPodWatcher
from airflow_provider_nsdiscovery.validation import NamespaceRefusal, check_pod_namespace
from airflow_provider_nsdiscovery.watchers.reconciler import WatcherSet

if TYPE_CHECKING:
    from airflow.providers.cncf.kubernetes.executors.kubernetes_executor_types import KubernetesJob
    from kubernetes.client import models as k8s

    from airflow_provider_nsdiscovery.discovery.engine import NamespaceDiscovery

# Watches hold one connection each for minutes; the pool must keep them all instead of
# discarding and re-opening connections once more namespaces are watched than its default size.
WATCH_POOL_SIZE = 4096


def _resource_versions() -> dict[str, str]:
    """Upstream's process-wide record of the last resourceVersion seen per namespace."""
    versions: dict[str, str] = ResourceVersion().resource_version  # type: ignore[no-untyped-call]
    return versions


class NamespaceRefusedError(PodReconciliationError):
    """A pod that may not be created where it would land.

    It derives from PodReconciliationError only so that upstream's pod-creation loop hands it to
    ``_handle_pod_publish_error`` (which the executor overrides) instead of crashing the loop.
    """

    def __init__(self, status: NamespaceStatus) -> None:
        super().__init__(status.message)
        self.status = status


class DynamicNamespaceKubernetesScheduler(AirflowKubernetesScheduler):
    """Watchers follow ``discovery``'s desired set; every pod is checked before it is created.

    ``kube_watchers`` stays the dict upstream iterates for health checks and shutdown, but it is
    owned by a :class:`WatcherSet`, and the watchers in it are threads, not processes.
    """

    def __init__(
        self, *args: Any, discovery: NamespaceDiscovery, cluster_wide: bool = False, **kwargs: Any
    ) -> None:
        self.discovery = discovery
        # When the identity may list and watch pods everywhere, one cluster-wide watch replaces
        # one watch per namespace; which namespaces may receive pods is still up to discovery.
        self.cluster_wide = cluster_wide
        self._watchers: WatcherSet[ThreadedPodWatcher] = WatcherSet(self._make_kube_watcher)
        # Where each task's pod is, so a 403 on create can be pinned on a namespace and tasks can be
        # failed when their namespace can no longer be watched. The executor prunes finished keys.
        self.task_namespaces: dict[Any, str] = {}
        super().__init__(*args, **kwargs)
        configuration = copy.deepcopy(self.kube_client.api_client.configuration)
        configuration.connection_pool_maxsize = max(configuration.connection_pool_maxsize, WATCH_POOL_SIZE)
        self._watch_api = client.CoreV1Api(client.ApiClient(configuration))
        self.reconcile_watchers(discovery.watched())

    def reconcile_watchers(self, desired: frozenset[str]) -> None:
        if not hasattr(self, "_watch_api"):  # discovery may call back while upstream __init__ runs
            return
        self._watchers.reconcile({ALL_NAMESPACES} if self.cluster_wide else desired)

    def _make_kube_watchers(self) -> dict[str, ThreadedPodWatcher]:  # type: ignore[override]
        return self._watchers.running

    def _make_kube_watcher(self, namespace: str) -> ThreadedPodWatcher:  # type: ignore[override]
        job_watcher = KubernetesJobWatcher(
            watcher_queue=self.watcher_queue,
            namespace=namespace,
            resource_version=_resource_versions().get(namespace, "0"),
            scheduler_job_id=self.scheduler_job_id,
            kube_config=self._watch_config(),
            supports_task_instance_uuid=self.supports_task_instance_uuid,
            team_name=self.team_name,
        )
        return ThreadedPodWatcher(job_watcher, self._watch_api, self._watch_refused)

    def _watch_config(self) -> Any:
        """Upstream's settings, with a watch that the server ends before the client times out.

        Upstream watches for an hour with a 30 s read timeout, so a quiet namespace hits the read
        timeout every 30 s and re-watches from resourceVersion "0", replaying its pods. With
        hundreds of namespaces that is steady API load for nothing; a server-side timeout of a
        few minutes (spread at random so watchers do not reconnect together) ends the watch
        cleanly instead. Values the operator set in kube_client_request_args are kept.
        """
        config = copy.copy(self.kube_config)
        args = dict(config.kube_client_request_args or {})
        args.setdefault("timeout_seconds", random.randint(240, 360))
        args.setdefault("_request_timeout", (10, int(args["timeout_seconds"]) + 30))
        config.kube_client_request_args = args
        return config

    def _watch_refused(self, namespace: str, why: str) -> None:
        self.discovery.invalidate(namespace, why)

    def _health_check_kube_watchers(self) -> None:
        self.reconcile_watchers(self.discovery.watched())

    def _build_pod_request(self, next_job: KubernetesJob) -> k8s.V1Pod:
        pod = super()._build_pod_request(next_job)
        self.task_namespaces[next_job.key] = pod.metadata.namespace
        try:
            check_pod_namespace(pod, self.discovery.check, team=self.team_name)
        except NamespaceRefusal as refusal:
            raise NamespaceRefusedError(refusal.status) from None
        return pod
