"""What the fault tests share: crashes, throttling, a ledger of task reports, end-of-test checks.

Every fault test ends the same way: every loop is alive (and healthy once the fault is gone),
every task was reported exactly once, and no pod of ours is left where nobody watches it.
"""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, cast

import urllib3
from airflow.models.taskinstancekey import TaskInstanceKey
from airflow.utils.state import TaskInstanceState
from kubernetes import client
from kubernetes.client import models as k8s

from kubeharness import Cluster, Identity, wait_until
from tests.harness.executor_pods import POD_RULES
from tests.integration.executor_helpers import Executor, pod_of, sync_until, watched

if TYPE_CHECKING:
    from airflow.models.taskinstance import TaskInstance

RECOVERY_TIMEOUT = 60.0
"""After a crash: the component restarts (seconds), then loops back off (up to 30 s) and retry."""
SETTLE_TIMEOUT = 30.0
"""For changes with nothing crashed: watch events and re-checks, three times the suite's usual wait."""
DOWNTIME = 3.0

CRASHES: dict[str, Callable[[Cluster, float], None]] = {
    "kube-apiserver": lambda cluster, downtime: cluster.restart_apiserver(downtime=downtime),
    "etcd": lambda cluster, downtime: cluster.restart_etcd(downtime=downtime),
}
NOT_FINAL = frozenset({TaskInstanceState.QUEUED, TaskInstanceState.RUNNING})
"""Every other report ends the try: failed, or None for a pod that succeeded (upstream then reads
the task's own state from the database, which these tests do not have)."""


def team_namespace(
    control_plane: Cluster, ns_factory: Callable[..., str], scheduler: Identity, label: str
) -> str:
    """A namespace labelled for discovery, with the pod rights the scheduler needs there."""
    name = ns_factory(labels={label: "true"})
    control_plane.grant(scheduler, name, POD_RULES)
    return name


def without_verbs(rules: list[client.V1PolicyRule], *verbs: str) -> list[client.V1PolicyRule]:
    """The same rules less some verbs: a RoleBinding that lost part of what it granted."""
    return [
        client.V1PolicyRule(
            api_groups=rule.api_groups,
            resources=rule.resources,
            verbs=[v for v in rule.verbs if v not in verbs],
        )
        for rule in rules
    ]


def running(control_plane: Cluster, admin: client.CoreV1Api, executor: Executor, key: TaskInstanceKey) -> str:
    """Move the task's pod to Running, as its kubelet would; returns the pod's name."""
    pod = pod_of(admin, executor, key)
    control_plane.set_pod_phase(pod.metadata.namespace, pod.metadata.name, "Running")
    return str(pod.metadata.name)


def orphan(key: TaskInstanceKey, job_id: int | str | None, namespace: str | None) -> TaskInstance:
    """What the scheduler hands a new executor to adopt: a TaskInstance queued by a dead job
    (``job_id``, the dead executor's), as far as adoption reads one."""
    override = k8s.V1Pod(metadata=k8s.V1ObjectMeta(namespace=namespace)) if namespace else None
    stand_in = SimpleNamespace(
        key=key,
        queued_by_job_id=job_id,
        dag_id=key.dag_id,
        task_id=key.task_id,
        run_id=key.run_id,
        try_number=key.try_number,
        map_index=key.map_index,
        executor_config={"pod_override": override} if override else {},
    )
    return cast("TaskInstance", stand_in)


def heartbeats(executor: Executor, seconds: float) -> None:
    """Let the executor run for a while, heartbeating as the scheduler does."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        executor.sync()
        time.sleep(0.1)


class ReportLedger(dict[Any, Any]):
    """The executor's event buffer, counting every final state it is given per task."""

    def __init__(self, initial: dict[Any, Any]) -> None:
        super().__init__(initial)
        self.finals: Counter[Any] = Counter()

    def __setitem__(self, key: Any, value: Any) -> None:
        if value[0] not in NOT_FINAL:
            self.finals[key] += 1
        super().__setitem__(key, value)


def ledger(executor: Executor) -> ReportLedger:
    executor.event_buffer = ReportLedger(executor.event_buffer)
    return executor.event_buffer


def assert_reported_once(executor: Executor, reports: ReportLedger, *keys: TaskInstanceKey) -> None:
    sync_until(
        executor,
        lambda: not set(keys) & executor.running,
        "every task to be reported",
        timeout=SETTLE_TIMEOUT,
    )
    heartbeats(executor, 0.5)  # a duplicate report would arrive about now
    assert {key: reports.finals[key] for key in keys} == dict.fromkeys(keys, 1)


def assert_loops_healthy(executor: Executor) -> None:
    """Every supervised loop is alive and, once its fault is gone, no longer failing."""
    assert executor.discovery is not None
    assert executor.kube_scheduler is not None
    discovery, scheduler = executor.discovery, executor.kube_scheduler

    def healthy() -> bool:
        executor.sync()
        loops = [*discovery.health(), *scheduler.watcher_health()]  # type: ignore[attr-defined]
        return all(loop.healthy for loop in loops) and all(
            w.is_alive() for w in scheduler.kube_watchers.values()
        )

    wait_until(
        healthy, "every discovery loop and pod watcher to be alive and healthy", timeout=RECOVERY_TIMEOUT
    )
    assert all(loop.alive for loop in discovery.health())


def assert_no_pod_unwatched(admin: client.CoreV1Api, executor: Executor) -> None:
    """Every pod of ours that is not finished runs where a watcher follows it."""
    assert executor.discovery is not None
    if executor.discovery.plan.cluster_wide:
        return
    selector = f"airflow-worker={executor.job_id}"
    for pod in admin.list_pod_for_all_namespaces(label_selector=selector).items:
        if pod.status.phase not in ("Succeeded", "Failed"):
            assert pod.metadata.namespace in watched(executor), f"{pod.metadata.name} runs unwatched"


@contextlib.contextmanager
def throttled(control_plane: Cluster, identity: Identity) -> Iterator[None]:
    """Requests ``identity`` sends from now on get real 429s from priority and fairness.

    A FlowSchema routes the identity to a priority level with the fewest seats the API server
    allows (one), which rejects instead of queueing, and a few threads keep that seat busy with
    the identity's own requests, as a flood of them would on a real server: whatever else it
    sends concurrently is refused with 429. Which request gets the seat is up to the server, so
    callers check that their own requests were refused. Watches already open keep streaming.
    """
    name = f"nsd-throttle-{uuid.uuid4().hex[:8]}"
    with control_plane.admin_api_client() as api_client:
        api = client.FlowcontrolApiserverV1Api(api_client)
        api.create_priority_level_configuration(
            client.V1PriorityLevelConfiguration(
                metadata=client.V1ObjectMeta(name=name),
                spec=client.V1PriorityLevelConfigurationSpec(
                    type="Limited",
                    limited=client.V1LimitedPriorityLevelConfiguration(
                        nominal_concurrency_shares=0,
                        lendable_percent=0,
                        borrowing_limit_percent=0,
                        limit_response=client.V1LimitResponse(type="Reject"),
                    ),
                ),
            )
        )
        api.create_flow_schema(
            client.V1FlowSchema(
                metadata=client.V1ObjectMeta(name=name),
                spec=client.V1FlowSchemaSpec(
                    matching_precedence=100,
                    priority_level_configuration=client.V1PriorityLevelConfigurationReference(name=name),
                    distinguisher_method=client.V1FlowDistinguisherMethod(type="ByUser"),
                    rules=[
                        client.V1PolicyRulesWithSubjects(
                            subjects=[
                                client.FlowcontrolV1Subject(
                                    kind="ServiceAccount",
                                    service_account=client.V1ServiceAccountSubject(
                                        name=identity.name, namespace=identity.namespace
                                    ),
                                )
                            ],
                            resource_rules=[
                                client.V1ResourcePolicyRule(
                                    verbs=["*"],
                                    api_groups=["*"],
                                    resources=["*"],
                                    cluster_scope=True,
                                    namespaces=["*"],
                                )
                            ],
                        )
                    ],
                ),
            )
        )
        core = client.CoreV1Api(identity.api_client)
        flooding = threading.Event()

        def flood() -> None:
            with client.ApiClient(identity.api_client.configuration) as own:
                api = client.CoreV1Api(own)
                while not flooding.is_set():
                    with contextlib.suppress(client.ApiException, urllib3.exceptions.HTTPError):
                        api.list_namespace(limit=500, _request_timeout=5)

        floods = [threading.Thread(target=flood, daemon=True) for _ in range(3)]
        for thread in floods:
            thread.start()

        try:
            yield
        finally:
            flooding.set()
            for thread in floods:
                thread.join(10)
            api.delete_flow_schema(name)
            api.delete_priority_level_configuration(name)

            def answered() -> bool:
                with contextlib.suppress(client.ApiException):
                    core.read_namespace(identity.namespace)
                    return True
                return False

            wait_until(answered, f"{identity.username} to be served again")
