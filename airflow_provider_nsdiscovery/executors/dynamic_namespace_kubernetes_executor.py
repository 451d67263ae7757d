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
from collections.abc import Iterator
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, cast

from airflow.exceptions import AirflowConfigException
from airflow.providers.cncf.kubernetes.executors import kubernetes_executor_utils
from airflow.providers.cncf.kubernetes.executors.kubernetes_executor import KubernetesExecutor
from airflow.providers.cncf.kubernetes.executors.kubernetes_executor_utils import get_base_pod_from_template
from airflow.providers.cncf.kubernetes.kube_client import _get_executor_kube_client
from airflow.providers.cncf.kubernetes.kubernetes_helper_functions import annotations_to_key, create_unique_id
from airflow.providers.cncf.kubernetes.pod_generator import PodGenerator
from kubernetes.client.rest import ApiException
from urllib3.exceptions import MaxRetryError, NewConnectionError, ProtocolError, ReadTimeoutError

from airflow_provider_nsdiscovery.config import SECTION, SettingsError
from airflow_provider_nsdiscovery.discovery.contracts import WatchPlan
from airflow_provider_nsdiscovery.discovery.controller import NamespaceDiscovery
from airflow_provider_nsdiscovery.discovery.status import NamespaceStatus, State, is_valid_namespace_name
from airflow_provider_nsdiscovery.discovery.wiring import connect
from airflow_provider_nsdiscovery.executor_config import executor_config_problem
from airflow_provider_nsdiscovery.executors.metrics import DiscoveryMetrics
from airflow_provider_nsdiscovery.executors.refusal_log import Refusal, RefusalReports
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
INVALID_EXECUTOR_CONFIG = "invalid-executor-config"
"""The refusal reason counted for a malformed executor_config (a namespace refusal counts its state)."""
_RBAC_DENIAL = "cannot create resource"
"""How the RBAC authorizer words a refusal, unlike admission (quota, PodSecurity, terminating)."""


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
        self._refusals = RefusalReports(self)
        self._adoption_namespaces: set[str] = set()
        self._refused_at_launch: set[Any] = set()
        self._sweep: threading.Thread | None = None
        self._listing = threading.Lock()  # the sweep lists pods beside the scheduler loop

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
        self._refusals.start()
        self.discovery = connect(self.discovery_settings, api_client, on_change=self._plan_changed)
        self.discovery.start()
        self.log.info(
            "namespace discovery (%s, selector '%s') found: %s",
            self.discovery.mode.value,
            self.discovery_settings.label_selector,
            ", ".join(sorted(self.discovery.watched())),
        )
        with _scheduler_class(
            functools.partial(DynamicNamespaceKubernetesScheduler, discovery=self.discovery)
        ):
            super().start()

    def sync(self) -> None:
        super().sync()
        self._refusals.hold_queued_events()
        if self.discovery is None or not isinstance(self.kube_scheduler, DynamicNamespaceKubernetesScheduler):
            return
        for key, _ in self.discovery.placement.items():
            if key not in self.running:
                self.discovery.placement.remove(key)  # finished, failed or revoked
        self._fail_unwatchable_tasks(self.discovery)
        writer = self._refusals.writer.health
        self._metrics.emit(self.discovery, self.kube_scheduler, loops=[writer] if writer else [])

    def _adopt_completed_pods(self, kube_client: Any) -> None:
        """Upstream's periodic sweep for finished pods of dead schedulers, moved off the scheduler
        loop: its API discovery and LIST carry no timeout, so a frozen API server would hold the
        loop (heartbeat included) until it answered. One sweep at a time; a failed one is tried
        again at the next interval."""
        if self._sweep is not None and self._sweep.is_alive():
            return
        self._sweep = threading.Thread(
            target=self._sweep_completed_pods, args=(kube_client,), name="nsd-pod-sweep", daemon=True
        )
        self._sweep.start()

    def _sweep_completed_pods(self, kube_client: Any) -> None:
        try:
            super()._adopt_completed_pods(kube_client)
        except Exception as err:
            self.log.warning("Could not look for completed pods of other schedulers now: %s", err)

    def _fail_unwatchable_tasks(self, discovery: NamespaceDiscovery) -> None:
        """Fail running tasks whose namespace can no longer be watched, instead of holding their slots.

        A namespace is only unwatched while tasks of ours are placed there when it cannot be
        watched at all (access to pods revoked, namespace gone); a task still counted as running
        there would never get a final state. Unknowns (API server down, review pending) and a
        forbidden namespace whose refusal is not yet confirmed one re-check later keep their tasks.
        """
        if discovery.plan.cluster_wide:
            return  # one watch sees every pod, wherever it runs
        for key, namespace in discovery.placement.items():
            if discovery.placement.is_finished(key):
                continue  # its result is on the watcher's queue; the next sync() reports it
            status = discovery.status(namespace)
            if status is None or not status.gives_up_tasks:
                continue
            message = f"{status.message}; the task's pod there can no longer be watched, so it is failed"
            self.log.error("Task %s: %s", key, message)
            self.fail(key, message)
            discovery.placement.remove(key)

    def execute_async(
        self, key: Any, command: Any, queue: str | None = None, executor_config: Any | None = None
    ) -> None:
        """Refuse a malformed executor_config with what is wrong and the fix, before anything is queued.

        Upstream answers every malformed form with one opaque "Invalid executor_config passed".
        """
        problem = executor_config_problem(executor_config)
        if problem is None:
            super().execute_async(key, command, queue=queue, executor_config=executor_config)
            return
        self.log.error("Task %s not launched: %s", key, problem)
        if self.discovery is not None:
            self.discovery.counters.refusals[INVALID_EXECUTOR_CONFIG] += 1
        self._refusals.report(key, command, Refusal(problem))
        self.fail(key, problem)
        self._refused_at_launch.add(key)

    def _process_workloads(self, workloads: Any) -> None:
        """cncf-kubernetes < 10.25 adds a task to ``running`` after ``execute_async``, refused or not."""
        super()._process_workloads(workloads)
        self.running.difference_update(self._refused_at_launch)
        self._refused_at_launch.clear()

    def try_adopt_task_instances(self, tis: Sequence[TaskInstance]) -> Sequence[TaskInstance]:
        """Also look where the orphaned tasks asked to run, not only in namespaces used now.

        A namespace may have lost its label while the scheduler was down; its pods still run and
        must be adopted (then drained), not reset and launched a second time elsewhere.
        """
        self._adoption_namespaces = {
            namespace
            for namespace in (self._landing_namespace(ti) for ti in tis)
            if namespace and is_valid_namespace_name(namespace)
        }
        try:
            return list(super().try_adopt_task_instances(tis))
        finally:
            self._adoption_namespaces = set()

    def _change_state(self, results: Any, **kwargs: Any) -> None:
        """Accept a pod's outcome only from the namespace where its task was placed.

        Anyone who may create pods in a watched namespace can label one like ours and annotate it
        as another tenant's task; its events must not finish that task. A task is placed in one
        namespace, when its pod is built or adopted; a pod elsewhere claiming it is ignored.
        """
        placed = self.discovery.placement.namespace_of(results.key) if self.discovery else None
        if placed is not None and results.namespace != placed:
            self._ignore_foreign_pod(results.namespace, results.pod_name, results.key, placed)
            return
        super()._change_state(results, **kwargs)

    def _ignore_foreign_pod(self, namespace: str, pod: str, key: Any, placed: str) -> None:
        self.log.warning(
            "Ignoring pod %s/%s: it claims task %s, which runs in namespace '%s', not '%s'",
            namespace,
            pod,
            key,
            placed,
            namespace,
        )
        if self.discovery is not None:
            self.discovery.counters.foreign_pods += 1

    def adopt_launched_task(self, kube_client: Any, pod: Any, tis_to_flush_by_key: dict[Any, Any]) -> None:
        """Adopt a pod only where its task would have been launched; remember where it runs.

        The namespace is the one the task's own executor_config asks for (or the home namespace),
        never one the pod chose: a pod claiming the task from another namespace is ignored.
        """
        ti = tis_to_flush_by_key.get(annotations_to_key(pod.metadata.annotations))
        if ti is not None:
            landing = self._landing_namespace(ti)
            if pod.metadata.namespace != landing:
                self._ignore_foreign_pod(pod.metadata.namespace, pod.metadata.name, ti.key, landing)
                return
        before = set(self.running)
        super().adopt_launched_task(kube_client, pod, tis_to_flush_by_key)
        namespace = pod.metadata.namespace
        if self.discovery is not None:
            for key in set(self.running) - before:
                self.discovery.placement.place(key, namespace)  # drains it if it is no longer used

    def _landing_namespace(self, ti: Any) -> str:
        """Where the task's pod lands: pod template, executor_config and the pod mutation hook
        applied by upstream's own pod construction, as at launch; what pod_override alone says
        if the task cannot be built (e.g. its executor_config no longer parses)."""
        scheduler = self.kube_scheduler
        if scheduler is None:
            return str(self._get_pod_namespace(ti))
        try:
            config = ti.executor_config or {}
            pod = PodGenerator.construct_pod(
                namespace=scheduler.namespace,
                scheduler_job_id=scheduler.scheduler_job_id,
                pod_id=create_unique_id(ti.dag_id, ti.task_id),
                dag_id=ti.dag_id,
                task_id=ti.task_id,
                kube_image=self.kube_config.kube_image,
                try_number=ti.try_number,
                map_index=ti.map_index,
                date=None,
                run_id=ti.run_id,
                args=[],
                pod_override_object=PodGenerator.from_obj(config),
                base_worker_pod=get_base_pod_from_template(config.get("pod_template_file"), self.kube_config),
                with_mutation_hook=True,
            )
            return str(pod.metadata.namespace)
        except Exception:
            return str(self._get_pod_namespace(ti))

    def _plan_changed(self, plan: WatchPlan) -> None:
        if isinstance(self.kube_scheduler, DynamicNamespaceKubernetesScheduler):
            self.kube_scheduler.request_reconcile(plan)

    def _list_pods(self, query_kwargs: dict[str, Any]) -> list[Any]:
        """Adoption, revocation and cleanup look in every namespace in use now, not a static list.

        A namespace whose access was revoked since its last review must not break adoption in all
        the others: on a 403 the namespaces are listed one by one and the refused ones re-checked.
        """
        if self.discovery is None:
            return list(super()._list_pods(query_kwargs))  # type: ignore[no-untyped-call]
        if self.discovery.plan.cluster_wide:
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
        with self._listing:  # upstream reads the namespaces to list from kube_config
            self.kube_config.multi_namespace_mode = True
            self.kube_config.multi_namespace_mode_namespace_list = namespaces
            return list(super()._list_pods(query_kwargs))  # type: ignore[no-untyped-call]

    def _handle_pod_publish_error(self, task: KubernetesJob, e: Exception) -> bool:
        """Refusals fail the task with their reason; an unknown defers it; a 403 is re-checked first.

        Both pod-creation paths (sequential and ``async_pod_creation``) end here, with the sync or
        the asyncio client's ApiException.
        """
        creates = self._scheduler.creates
        if creates.pending(task.key) and _already_exists(e):
            self.log.info("Task %s launched: the pod of its earlier, unanswered create exists", task.key)
            creates.answered(task.key)
            self.task_publish_retries.pop(task.key, None)
            return False
        if _pod_may_have_been_made(e):
            # Kept placed where the pod may run; the retry reuses the pod name, so it cannot make two.
            creates.unanswered(task.key)
            return self._defer(task, f"the create got no answer ({e!r}); trying it again under the same name")
        if (isinstance(e, NamespaceRefusedError) and e.deferred) or _no_pod_was_made_yet(e):
            if not creates.pending(task.key):  # else a pod from an earlier attempt may still run there
                self._unplace(task)
            return self._defer(task, str(e))
        # No pod was created: the task is not in that namespace (a retry places it again).
        namespace = self._unplace(task)
        if isinstance(e, NamespaceRefusedError):
            self._refuse(task, e.status)
            return False
        if _is_forbidden(e) and namespace is not None and self.discovery is not None:
            status = self.discovery.recheck(namespace, f"creating a pod was refused: {_api_message(e)}")
            if status.state not in (State.PERMITTED, State.PENDING):
                self._refuse(task, status)
                return False
            if _RBAC_DENIAL in _api_message(e):
                # Our own review does not confirm the refusal: an API server whose authorizer is
                # still filling its caches after a restart. Not an answer: try again later, and
                # hold the namespace's other creates back meanwhile (create_holds.py).
                held = self._scheduler.holds.hold(namespace)
                return self._defer(
                    task,
                    f"'{namespace}' refused a pod that its access review allows; next try in {held:.1f}s",
                )
        stop = bool(super()._handle_pod_publish_error(task, e))
        if task.key not in self.running:  # upstream failed it
            creates.answered(task.key)
        return stop

    @property
    def _scheduler(self) -> DynamicNamespaceKubernetesScheduler:
        assert isinstance(self.kube_scheduler, DynamicNamespaceKubernetesScheduler), "start() runs first"
        return self.kube_scheduler

    def _unplace(self, task: KubernetesJob) -> str | None:
        return self.discovery.placement.remove(task.key) if self.discovery else None

    def _defer(self, task: KubernetesJob, why: str) -> bool:
        """No answer yet: the task waits for the next loop, as queued (Airflow's task_queued_timeout
        bounds the wait), and so does the rest of this loop's batch, which would meet the same."""
        self.log.warning("Task %s not launched yet (%s); trying again on the next loop", task.key, why)
        if self.task_queue is not None:
            self.task_queue.put(task)
        return True

    def _refuse(self, task: KubernetesJob, status: NamespaceStatus) -> None:
        """The reason goes to the scheduler log, the task's log and audit log (see refusal_log.py),
        and with the failure, which the scheduler records as "state mismatch" (the task is queued)."""
        self.log.error("Task %s not launched: %s", task.key, status.message)
        if self.discovery is not None:
            self.discovery.counters.refusals[status.state.value] += 1
        self._refusals.report(task.key, task.command, Refusal.of(status))
        self.fail(task.key, status.message)
        self.task_publish_retries.pop(task.key, None)
        self._scheduler.creates.answered(task.key)

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
            self._refusals.stop()
            if self.discovery is not None:
                self.discovery.stop()
        finally:
            super().end()


def _api_status(err: Exception) -> int | None:
    """The HTTP status in an ApiException of either client (see _handle_pod_publish_error); None for
    an error that carries no answer of the API server."""
    from kubernetes_asyncio.client.exceptions import ApiException as AsyncApiException  # noqa: PLC0415

    if isinstance(err, (ApiException, AsyncApiException)):
        return cast("int | None", err.status)
    return None


def _no_pod_was_made_yet(err: Exception) -> bool:
    """A transient failure after which the pod surely does not exist: the API server asked us to
    come back (429, 503) or was never reached. Upstream fails such a task at once with its default
    ``task_publish_max_retries = 0``; a transient error must not fail a task. Errors after which the
    pod might exist are _pod_may_have_been_made's: retrying those blindly could create a second pod
    for the same try."""
    from aiohttp import ClientConnectorError  # noqa: PLC0415 (the asyncio client's transport)

    if (status := _api_status(err)) is not None:
        return status in (HTTPStatus.TOO_MANY_REQUESTS, HTTPStatus.SERVICE_UNAVAILABLE)
    return isinstance(_cause(err), (NewConnectionError, ConnectionRefusedError, ClientConnectorError))


def _cause(err: Exception) -> BaseException:
    return err.reason if isinstance(err, MaxRetryError) and err.reason is not None else err


def _pod_may_have_been_made(err: Exception) -> bool:
    """The request may have reached the API server but its answer never came back: a timeout, a
    connection broken mid-request, or a 5xx from a proxy or an API server that failed after
    storing (500, 502, 504). A 503 says "come back", so it is in ``_no_pod_was_made_yet``."""
    from aiohttp import ServerDisconnectedError, ServerTimeoutError  # noqa: PLC0415 (asyncio client)

    if (status := _api_status(err)) is not None:
        return status in (
            HTTPStatus.INTERNAL_SERVER_ERROR,
            HTTPStatus.BAD_GATEWAY,
            HTTPStatus.GATEWAY_TIMEOUT,
        )
    unanswered = (ReadTimeoutError, ProtocolError, ConnectionResetError, TimeoutError)
    return isinstance(_cause(err), (*unanswered, ServerDisconnectedError, ServerTimeoutError))


def _already_exists(err: Exception) -> bool:
    return _api_status(err) == HTTPStatus.CONFLICT and "AlreadyExists" in str(getattr(err, "body", ""))


def _is_forbidden(err: Exception) -> bool:
    """A 403 from either client that is about RBAC (a quota refusal is retried by upstream)."""
    return _api_status(err) == HTTPStatus.FORBIDDEN and "exceeded quota" not in _api_message(err)


def _api_message(err: Any) -> str:
    try:
        return str(json.loads(err.body or "{}").get("message", err.reason))
    except (ValueError, TypeError, AttributeError):
        return str(err.body or err.reason)
