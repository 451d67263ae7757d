"""The upstream AirflowKubernetesScheduler with watchers, launches and clean-ups driven by discovery."""

from __future__ import annotations

import copy
import functools
import random
import ssl
import threading
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

import urllib3
from airflow.providers.cncf.kubernetes.exceptions import PodReconciliationError
from airflow.providers.cncf.kubernetes.executors.kubernetes_executor_types import (
    ALL_NAMESPACES,
    POD_EXECUTOR_DONE_KEY,
)
from airflow.providers.cncf.kubernetes.executors.kubernetes_executor_utils import (
    AirflowKubernetesScheduler,
    KubernetesJobWatcher,
    ResourceVersion,
)
from kubernetes import client
from urllib3.util.ssl_ import create_urllib3_context

from airflow_provider_nsdiscovery.cleanup import PodCleanup, PodCleanupJob
from airflow_provider_nsdiscovery.create_holds import CreateHolds
from airflow_provider_nsdiscovery.discovery.contracts import WatchPlan
from airflow_provider_nsdiscovery.discovery.controller import CLUSTER_SCOPE
from airflow_provider_nsdiscovery.discovery.source import REQUEST_TIMEOUT
from airflow_provider_nsdiscovery.discovery.status import NamespaceStatus, State
from airflow_provider_nsdiscovery.executors.pod_results import ResultTap
from airflow_provider_nsdiscovery.executors.pod_watcher import ThreadedPodWatcher
from airflow_provider_nsdiscovery.idempotent_create import UnansweredCreates
from airflow_provider_nsdiscovery.loops import LoopHealth, Supervisor
from airflow_provider_nsdiscovery.validation import NamespaceRefusal, check_pod_namespace
from airflow_provider_nsdiscovery.watcher_set import WatcherSet

if TYPE_CHECKING:
    from airflow.providers.cncf.kubernetes.executors.kubernetes_executor_types import KubernetesJob
    from kubernetes.client import models as k8s

    from airflow_provider_nsdiscovery.discovery.controller import NamespaceDiscovery

# Watches hold one connection each for minutes; the pool must keep them all instead of
# discarding and re-opening connections once more namespaces are watched than its default size.
WATCH_POOL_SIZE = 4096
CREATE_TIMEOUT = (5.0, 5.0)
"""Connect and read timeouts of a pod create, unless kube_client_request_args sets its own.

Upstream's create has none, so an API server that accepts the connection but does not answer
(starting up, frozen, overloaded) holds the scheduler loop, heartbeat included, for as long as
it likes. A create normally answers in tens of milliseconds; one that takes 5 s is retried on
the next loop under the same pod name (see idempotent_create.py), so timing out costs no task."""


def _one_tls_context(api_client: client.ApiClient) -> None:
    """Give every connection of ``api_client`` one TLS context, built once.

    urllib3 builds a context and loads the CA file (and client certificate) for each new
    connection, and every watch is a connection of its own: measured here, sharing one context
    takes 0.5-0.9 ms of CPU off each watch opened, about a sixth of it (ms of CPU per watch open,
    300 opens: 3.16 -> 2.30 and 2.43 -> 1.95). The files are read once, when the scheduler starts,
    like the token and kubeconfig are. A proxy pool is left as it is.
    """
    pool = api_client.rest_client.pool_manager
    if type(pool) is not urllib3.PoolManager:
        return
    options = pool.connection_pool_kw
    if options.get("ssl_context") is not None:
        return
    context = create_urllib3_context(cert_reqs=options.get("cert_reqs", ssl.CERT_REQUIRED))
    ca_file = options.pop("ca_certs", None)
    if context.verify_mode != ssl.CERT_NONE:
        if ca_file:
            context.load_verify_locations(ca_file)
        else:
            context.load_default_certs()
    cert_file, key_file = options.pop("cert_file", None), options.pop("key_file", None)
    if cert_file:
        context.load_cert_chain(cert_file, key_file)
    options["ssl_context"] = context


def _resource_versions() -> dict[str, str]:
    """Upstream's process-wide record of the last resourceVersion seen per namespace."""
    versions: dict[str, str] = ResourceVersion().resource_version  # type: ignore[no-untyped-call]
    return versions


def _dag_id(job: KubernetesJob) -> str | None:
    """The task's DAG as the scheduler queued it: from its key, or its workload on newer Airflow."""
    dag_id = getattr(job.key, "dag_id", None)
    if dag_id is None and job.command:
        dag_id = getattr(getattr(job.command[0], "ti", None), "dag_id", None)
    return str(dag_id) if dag_id is not None else None


class NamespaceRefusedError(PodReconciliationError):
    """A pod that may not be created where it would land.

    It derives from PodReconciliationError only so that upstream's pod-creation loop hands it to
    ``_handle_pod_publish_error`` (which the executor overrides) instead of crashing the loop.
    """

    def __init__(self, status: NamespaceStatus) -> None:
        super().__init__(status.message)
        self.status = status

    @property
    def deferred(self) -> bool:
        """No answer yet (the API server is slow or down): try the task again later, do not fail it."""
        return self.status.state is State.PENDING


class DynamicNamespaceKubernetesScheduler(AirflowKubernetesScheduler):
    """Watchers follow ``discovery``'s plan; every pod is checked before it is created.

    ``kube_watchers`` stays the dict upstream iterates for health checks and shutdown, but it is
    owned by a :class:`WatcherSet`, and the watchers in it are threads, not processes.
    """

    def __init__(self, *args: Any, discovery: NamespaceDiscovery, **kwargs: Any) -> None:
        self.discovery = discovery
        self._watchers: WatcherSet[ThreadedPodWatcher] = WatcherSet(self._make_kube_watcher)
        self.cleanup = PodCleanup(self._clean_up)
        self.creates = UnansweredCreates()
        self.holds = CreateHolds()
        self._start_gate = threading.local()
        self._wanted_plan: WatchPlan | None = None
        self._reconciled_plan: WatchPlan | None = None
        self._plan_requested = threading.Condition()
        self._loops = Supervisor()
        super().__init__(*args, **kwargs)
        configuration = copy.deepcopy(self.kube_client.api_client.configuration)
        configuration.connection_pool_maxsize = max(configuration.connection_pool_maxsize, WATCH_POOL_SIZE)
        watch_client = client.ApiClient(configuration)
        _one_tls_context(watch_client)
        self._watch_api = client.CoreV1Api(watch_client)
        self.cleanup.start()
        self.reconcile_watchers(discovery.plan)
        self._loops.spawn("nsd-watcher-reconcile", self._reconcile_requested)

    def request_reconcile(self, plan: WatchPlan) -> None:
        """Reconcile the watchers to ``plan`` soon, on the scheduler's own reconcile thread.

        Discovery calls this from its review workers, under its publish lock. Starting watchers
        there made each review wait for the previous review's watcher to start, and a watcher
        start waits for the GIL while the watchers started before it open their connections: with
        namespaces labelled by the hundred, the last watch opened seconds after its label.
        Requests are coalesced: the thread reconciles to the newest plan, every namespace that
        arrived meanwhile in one gated batch. Watchers the plan drops are stopped here at once
        (a socket shutdown, no thread to wait for): handing that to the thread cost a wake-up,
        1-2 ms at p50 in the bench, on the path that should take effect first.
        """
        if hasattr(self, "_watch_api"):  # discovery may call back while upstream __init__ runs
            self._watchers.stop_unwanted(self._desired(plan))
        with self._plan_requested:
            self._wanted_plan = plan
            self._plan_requested.notify()

    def _reconcile_requested(self) -> None:
        with self._plan_requested:
            if self._wanted_plan is None and not self._loops.stopped.is_set():
                self._plan_requested.wait(1.0)
            plan, self._wanted_plan = self._wanted_plan, None
        if plan is not None:
            try:
                self.reconcile_watchers(plan)
            except Exception:
                with self._plan_requested:  # retried after the loop's backoff, unless a newer plan came
                    if self._wanted_plan is None:
                        self._wanted_plan = plan
                raise

    def reconcile_watchers(self, plan: WatchPlan) -> None:
        if not hasattr(self, "_watch_api"):  # discovery may call back while upstream __init__ runs
            return
        # The watchers one reconcile starts wait at a gate until all of them exist. Thread.start()
        # waits until the new thread runs, and with hundreds of watchers already busy opening TLS
        # connections each start waited for the GIL: at N=1000 starting the threads took seconds.
        gate = threading.Event()
        self._start_gate.current = gate
        try:
            self._watchers.reconcile(self._desired(plan))
            self._reconciled_plan = plan
        finally:
            self._start_gate.current = None
            gate.set()

    @staticmethod
    def _desired(plan: WatchPlan) -> frozenset[str]:
        return frozenset({ALL_NAMESPACES}) if plan.cluster_wide else plan.namespaces

    def _make_kube_watchers(self) -> dict[str, ThreadedPodWatcher]:  # type: ignore[override]
        return self._watchers.running

    def _make_kube_watcher(self, namespace: str) -> ThreadedPodWatcher:  # type: ignore[override]
        job_watcher = KubernetesJobWatcher(
            watcher_queue=ResultTap.around(
                self.watcher_queue, self.discovery.placement.finished, self.supports_task_instance_uuid
            ),
            namespace=namespace,
            resource_version=_resource_versions().get(namespace, "0"),
            scheduler_job_id=self.scheduler_job_id,
            kube_config=self._watch_config(),
            supports_task_instance_uuid=self.supports_task_instance_uuid,
            team_name=self.team_name,
        )
        return ThreadedPodWatcher(
            job_watcher,
            self._watch_api,
            self._watch_refused,
            gate=getattr(self._start_gate, "current", None),
            on_end=functools.partial(self._watchers.ended, namespace),
        )

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

    def watcher_health(self) -> list[LoopHealth]:
        return [*self._loops.health(), *(watcher.health for watcher in self._watchers.running.values())]

    def _watch_refused(self, namespace: str, why: str) -> None:
        self.discovery.invalidate(CLUSTER_SCOPE if namespace == ALL_NAMESPACES else namespace, why)

    def _health_check_kube_watchers(self) -> None:
        """Upstream's per-loop check, O(1) unless something changed.

        Upstream asks every watcher ``is_alive()`` on every scheduler loop; at thousands of
        namespaces that scan (and a diff of the whole plan) was a per-task cost of the loop. Here a
        watcher thread says when it ends, and a new plan is reconciled by the reconcile thread
        (and here, if that has not happened yet): with neither, there is nothing to check.
        """
        plan = self.discovery.plan
        if plan is not self._reconciled_plan:
            self.reconcile_watchers(plan)
        else:
            self._watchers.check(lambda: self._desired(plan))

    def run_next(self, next_job: KubernetesJob) -> None:
        super().run_next(next_job)
        self.creates.answered(next_job.key)

    def run_next_batch(self, next_jobs: list[KubernetesJob]) -> list[tuple[KubernetesJob, Exception | None]]:
        results: list[tuple[KubernetesJob, Exception | None]] = super().run_next_batch(next_jobs)
        for job, error in results:
            if error is None:
                self.creates.answered(job.key)
                if (namespace := self.discovery.placement.namespace_of(job.key)) is not None:
                    self.holds.release(namespace)
        return results

    def run_pod_async(self, pod: k8s.V1Pod, **kwargs: Any) -> Any:
        kwargs.setdefault("_request_timeout", CREATE_TIMEOUT)
        return super().run_pod_async(pod, **kwargs)

    def _build_pod_request(self, next_job: KubernetesJob) -> k8s.V1Pod:
        pod = super()._build_pod_request(next_job)
        name = self.creates.name(next_job.key, pod.metadata.name)
        if name != pod.metadata.name:
            self.log.info(
                "The pod for %s is created under %s instead: its create got no answer", next_job.key, name
            )
            pod.metadata.name = name
        try:
            check_pod_namespace(pod, self.discovery.check, dag_id=_dag_id(next_job), team=self.team_name)
        except NamespaceRefusal as refusal:
            raise NamespaceRefusedError(refusal.status) from None
        # Place, then look again: discovery marks a namespace as taking no new tasks before it
        # counts the tasks placed there, so either it counts this one (and keeps watching), or
        # this second look sees the change and the task waits for the next loop. The executor's
        # error handler takes the task out again whenever no pod is created.
        namespace = pod.metadata.namespace
        if held := self.holds.held_for(namespace):
            raise NamespaceRefusedError(
                NamespaceStatus(
                    namespace,
                    State.PENDING,
                    f"it refused a pod moments ago that its access review allows; next try in {held:.1f}s",
                )
            )
        self.discovery.placement.place(next_job.key, namespace)
        now = self.discovery.status(namespace)
        if now is None or now.state is not State.PERMITTED:
            raise NamespaceRefusedError(
                NamespaceStatus(namespace, State.PENDING, "it changed during the launch")
            )
        return pod

    def delete_pod(self, pod_name: str, namespace: str) -> None:
        self._clean_up_or_defer(PodCleanupJob("delete", namespace, pod_name))

    def patch_pod_executor_done(self, *, pod_name: str, namespace: str) -> None:
        self._clean_up_or_defer(PodCleanupJob("mark done", namespace, pod_name))

    def _clean_up_or_defer(self, job: PodCleanupJob) -> None:
        """Never raise into upstream's result loop, which would re-read the result forever."""
        try:
            self._clean_up(job)
        except Exception as err:
            self.cleanup.defer(job, err)

    def _clean_up(self, job: PodCleanupJob) -> None:
        """Upstream's clean-up calls, bounded in time; upstream's own wait forever on a frozen server."""
        request_args = {
            **(self.kube_config.kube_client_request_args or {}),
            "_request_timeout": REQUEST_TIMEOUT,
        }
        try:
            if job.action == "delete":
                self.kube_client.delete_namespaced_pod(
                    job.pod,
                    job.namespace,
                    body=client.V1DeleteOptions(**self.kube_config.delete_option_kwargs),
                    **request_args,
                )
            else:
                self.kube_client.patch_namespaced_pod(
                    name=job.pod,
                    namespace=job.namespace,
                    body={"metadata": {"labels": {POD_EXECUTOR_DONE_KEY: "True"}}},
                    **request_args,
                )
        except client.ApiException as err:
            if err.status != HTTPStatus.NOT_FOUND:  # gone already: nothing left to clean
                raise

    def terminate(self) -> None:
        self._loops.stopped.set()
        with self._plan_requested:
            self._plan_requested.notify()
        self._loops.stop()
        self.cleanup.stop()
        super().terminate()
