"""DynamicNamespaceKubernetesExecutor: the upstream KubernetesExecutor, namespaces found at runtime.

Only the seams change: which scheduler object runs the watchers and creates pods, which
namespaces adoption and cleanup look in, and how a refused launch fails its task. Everything else
(pod building, state handling, adoption logic, logs) is upstream's code, unchanged.
"""

from __future__ import annotations

import contextlib
import functools
import json
import threading
import time
from collections.abc import Iterator
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from airflow.exceptions import AirflowConfigException
from airflow.providers.cncf.kubernetes.executors import kubernetes_executor_utils
from airflow.providers.cncf.kubernetes.executors.kubernetes_executor import KubernetesExecutor
from airflow.providers.cncf.kubernetes.executors.kubernetes_executor_types import POD_EXECUTOR_DONE_KEY
from airflow.providers.cncf.kubernetes.kube_client import _get_executor_kube_client
from kubernetes import client
from kubernetes.client.rest import ApiException

from airflow_provider_nsdiscovery.config import SECTION, SettingsError
from airflow_provider_nsdiscovery.discovery.access import Permission, access_allowed
from airflow_provider_nsdiscovery.discovery.engine import NamespaceDiscovery
from airflow_provider_nsdiscovery.discovery.state import State, is_valid_namespace_name
from airflow_provider_nsdiscovery.executors.metrics import DiscoveryMetrics
from airflow_provider_nsdiscovery.executors.scheduler import (
    DynamicNamespaceKubernetesScheduler,
    NamespaceRefusedError,
)
from airflow_provider_nsdiscovery.executors.settings import settings_from_conf

if TYPE_CHECKING:
    from collections.abc import Sequence

    from airflow.cli.cli_config import GroupCommand
    from airflow.models.taskinstance import TaskInstance
    from airflow.providers.cncf.kubernetes.executors.kubernetes_executor_types import KubernetesJob

_SCHEDULER_SWAP = threading.Lock()


@contextlib.contextmanager
def _scheduler_class(factory: Any) -> Iterator[None]:
    """Have upstream ``start()`` build our scheduler.

    Upstream imports ``AirflowKubernetesScheduler`` from its module inside ``start()`` and offers no
    other hook; swapping the module attribute for the duration of that call is the one seam that
    avoids copying ``start()``. The lock keeps two executors in one process from interleaving.
    """
    with _SCHEDULER_SWAP:
        original = kubernetes_executor_utils.AirflowKubernetesScheduler
        setattr(kubernetes_executor_utils, "AirflowKubernetesScheduler", factory)  # noqa: B010
        try:
            yield
        finally:
            setattr(kubernetes_executor_utils, "AirflowKubernetesScheduler", original)  # noqa: B010


class DynamicNamespaceKubernetesExecutor(KubernetesExecutor):
    """KubernetesExecutor whose namespaces are discovered by label selector and access review."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[no-untyped-call]
        if self.kube_config.multi_namespace_mode_namespace_list:
            raise AirflowConfigException(
                "[kubernetes_executor] multi_namespace_mode_namespace_list is set, but "
                "DynamicNamespaceKubernetesExecutor discovers namespaces itself: unset it, and label the "
                f"namespaces instead (or list them in [{SECTION}] candidate_namespaces if the scheduler "
                "may not list namespaces cluster-wide)"
            )
        try:
            self.discovery_settings = settings_from_conf(
                self.conf, home_namespace=str(self.kube_config.kube_namespace)
            )
        except SettingsError as err:
            raise AirflowConfigException(str(err)) from None
        self.discovery: NamespaceDiscovery | None = None
        self._metrics = DiscoveryMetrics()
        self._adoption_namespaces: set[str] = set()
        self._unwatched_since: dict[str, float] = {}
        self.cluster_wide = False

    def start(self) -> None:
        try:
            api_client = _get_executor_kube_client(team_name=self.team_name).api_client
        except Exception as err:
            raise AirflowConfigException(
                "cannot build a Kubernetes client from [kubernetes_executor] "
                f"(in_cluster={self.conf.get('kubernetes_executor', 'in_cluster', fallback='')!r}, "
                f"config_file={self.conf.get('kubernetes_executor', 'config_file', fallback='')!r}): "
                f"{err}. Point config_file at a readable kubeconfig, or set in_cluster = True when the "
                "scheduler runs in the cluster"
            ) from err
        worker = self._make_safe_label_value(str(self.job_id))
        self.discovery = NamespaceDiscovery(
            self.discovery_settings,
            api_client,
            active_pod_selector=f"airflow-worker={worker},{POD_EXECUTOR_DONE_KEY}!=True",
            on_change=self._namespaces_changed,
        )
        self.discovery.start()
        self.log.info(
            "namespace discovery (%s, selector '%s') found: %s",
            self.discovery.mode,
            self.discovery_settings.label_selector,
            ", ".join(sorted(self.discovery.watched())),
        )
        self.cluster_wide = _may_watch_pods_everywhere(api_client)
        if self.cluster_wide:
            self.log.info(
                "%s may list and watch pods in every namespace: one cluster-wide pod watch serves "
                "all discovered namespaces",
                self.discovery.identity,
            )
        with _scheduler_class(
            functools.partial(
                DynamicNamespaceKubernetesScheduler, discovery=self.discovery, cluster_wide=self.cluster_wide
            )
        ):
            super().start()

    def sync(self) -> None:
        super().sync()
        if self.discovery is None or not isinstance(self.kube_scheduler, DynamicNamespaceKubernetesScheduler):
            return
        if not self.cluster_wide:  # a cluster-wide watch sees every pod, wherever it runs
            self._fail_unwatchable_tasks(self.kube_scheduler.task_namespaces, self.discovery)
        self._metrics.emit(self.discovery, len(self.kube_scheduler.kube_watchers))

    def _fail_unwatchable_tasks(self, task_namespaces: dict[Any, str], discovery: NamespaceDiscovery) -> None:
        """Fail running tasks whose namespace stayed unwatched, instead of holding their slots.

        A namespace is only unwatched once it has no running pods of ours (after draining), or when
        it cannot be watched at all (access revoked, namespace gone). Either way a task still
        counted as running there would never get a final state. A forbidden namespace gets one
        re-check interval of grace, so a brief RBAC gap (a binding being re-created) does not cost
        the task a retry: if access comes back, the restarted watcher replays the pod's state.
        """
        watched = discovery.watched()
        now = time.monotonic()
        grace = discovery.settings.access_recheck_interval
        for namespace in set(self._unwatched_since) & watched:
            del self._unwatched_since[namespace]
        for key, namespace in list(task_namespaces.items()):
            if key not in self.running:
                del task_namespaces[key]  # finished, failed or revoked: nothing left to follow
            elif namespace not in watched:
                status = discovery.status(namespace)
                since = self._unwatched_since.setdefault(namespace, now)
                if status is not None and status.state is State.FORBIDDEN and now - since < grace:
                    continue  # access may come back; a deleted namespace will not
                reason = status.message if status else f"namespace '{namespace}' is no longer used"
                message = f"{reason}; the task's pod there can no longer be watched, so the task is failed"
                self.log.error("Task %s: %s", key, message)
                self.fail(key, message)
                del task_namespaces[key]

    def try_adopt_task_instances(self, tis: Sequence[TaskInstance]) -> Sequence[TaskInstance]:
        """Also look where the orphaned tasks asked to run, not only in namespaces used now.

        A namespace may have lost its label while the scheduler was down; its pods still run and
        must be adopted (then drained), not reset and launched a second time elsewhere.
        """
        self._adoption_namespaces = {
            namespace
            for namespace in (self._get_pod_namespace(ti) for ti in tis)
            if namespace and is_valid_namespace_name(namespace)
        }
        try:
            return list(super().try_adopt_task_instances(tis))
        finally:
            self._adoption_namespaces = set()

    def adopt_launched_task(self, kube_client: Any, pod: Any, tis_to_flush_by_key: dict[Any, Any]) -> None:
        """Remember where adopted pods run, and keep watching there while they do."""
        before = set(self.running)
        super().adopt_launched_task(kube_client, pod, tis_to_flush_by_key)
        namespace = pod.metadata.namespace
        if set(self.running) - before and self.discovery is not None:
            if namespace not in self.discovery.watched():
                self.discovery.adopt(namespace)
            if isinstance(self.kube_scheduler, DynamicNamespaceKubernetesScheduler):
                for key in set(self.running) - before:
                    self.kube_scheduler.task_namespaces[key] = namespace

    def _namespaces_changed(self, desired: frozenset[str]) -> None:
        if isinstance(self.kube_scheduler, DynamicNamespaceKubernetesScheduler):
            self.kube_scheduler.reconcile_watchers(desired)

    def _list_pods(self, query_kwargs: dict[str, Any]) -> list[Any]:
        """Adoption, revocation and cleanup look in every namespace in use now, not a static list.

        A namespace whose access was revoked since its last review must not break adoption in all
        the others: on a 403 the namespaces are listed one by one and the refused ones re-checked.
        """
        if self.discovery is None:
            return list(super()._list_pods(query_kwargs))  # type: ignore[no-untyped-call]
        if self.cluster_wide:
            return self._list_pods_in([], query_kwargs)  # an empty list: upstream lists everywhere
        namespaces = sorted(self.discovery.watched() | self._adoption_namespaces)
        try:
            return self._list_pods_in(namespaces, query_kwargs)
        except ApiException as err:
            if err.status != HTTPStatus.FORBIDDEN:
                raise
        pods: list[Any] = []
        for namespace in namespaces:
            try:
                pods.extend(self._list_pods_in([namespace], query_kwargs))
            except ApiException as err:
                if err.status != HTTPStatus.FORBIDDEN:
                    raise
                self.discovery.invalidate(namespace, f"listing pods was refused: {_api_message(err)}")
        return pods

    def _list_pods_in(self, namespaces: list[str], query_kwargs: dict[str, Any]) -> list[Any]:
        self.kube_config.multi_namespace_mode = True
        self.kube_config.multi_namespace_mode_namespace_list = namespaces
        return list(super()._list_pods(query_kwargs))  # type: ignore[no-untyped-call]

    def _handle_pod_publish_error(self, task: KubernetesJob, e: Exception) -> bool:
        if isinstance(e, NamespaceRefusedError):
            self._refuse(task, e.status.message, e.status.state)
            return False
        namespace = self._launch_namespace(task)
        if (
            isinstance(e, ApiException)
            and e.status == HTTPStatus.FORBIDDEN
            and "exceeded quota" not in _api_message(e)
            and namespace is not None
            and self.discovery is not None
        ):
            status = self.discovery.invalidate(namespace, f"creating a pod was refused: {_api_message(e)}")
            if status.state is not State.PERMITTED:
                self._refuse(task, status.message, status.state)
                return False
        return bool(super()._handle_pod_publish_error(task, e))

    def _launch_namespace(self, task: KubernetesJob) -> str | None:
        if isinstance(self.kube_scheduler, DynamicNamespaceKubernetesScheduler):
            return self.kube_scheduler.task_namespaces.get(task.key)
        return None

    def _refuse(self, task: KubernetesJob, message: str, state: State) -> None:
        self.log.error("Task %s not launched: %s", task.key, message)
        if self.discovery is not None:
            self.discovery.counters[f"refused: {state.value}"] += 1
        self.fail(task.key, message)
        self.task_publish_retries.pop(task.key, None)

    @staticmethod
    def get_cli_commands() -> list[GroupCommand]:
        """Airflow asks the executor class for commands when it cannot use the provider's ``cli``
        entry; the upstream ``kubernetes`` group must stay available to users of this executor."""
        from airflow_provider_nsdiscovery.cli.definition import (  # noqa: PLC0415 (keeps the CLI lazy)
            get_namespace_discovery_cli_commands,
        )

        return [*KubernetesExecutor.get_cli_commands(), *get_namespace_discovery_cli_commands()]

    def end(self) -> None:
        try:
            if self.discovery is not None:
                self.discovery.stop()
        finally:
            super().end()


def _may_watch_pods_everywhere(api_client: Any) -> bool:
    api = client.AuthorizationV1Api(api_client)
    try:
        return all(access_allowed(api, Permission(verb, "pods"), None) for verb in ("list", "watch"))
    except ApiException:
        return False


def _api_message(err: ApiException) -> str:
    try:
        return str(json.loads(err.body or "{}").get("message", err.reason))
    except (ValueError, TypeError, AttributeError):
        return str(err.body or err.reason)
