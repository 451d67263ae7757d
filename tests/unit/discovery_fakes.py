"""Small fakes that honour the controller's seams (Clock, NamespaceSource, Reviewer).

They model a cluster as plain data, so a unit test can change labels, RBAC and faults and then
drive the real :class:`NamespaceDiscovery` one reconcile at a time. A fault makes every call
raise a connection error, as an API server that is down does.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from airflow_provider_nsdiscovery.config import DiscoverySettings
from airflow_provider_nsdiscovery.discovery.contracts import WatchPlan
from airflow_provider_nsdiscovery.discovery.controller import NamespaceDiscovery
from airflow_provider_nsdiscovery.discovery.permissions import REQUIRED_PERMISSIONS
from airflow_provider_nsdiscovery.discovery.source import ListForbiddenError
from airflow_provider_nsdiscovery.discovery.status import AccessDecision, Observation

IDENTITY = "system:serviceaccount:airflow:scheduler"
ALL_MISSING = tuple(str(p) for p in REQUIRED_PERMISSIONS)
SELECTOR = {"airflow-enabled": "true"}
SA_FLAG = "--serviceaccount=airflow:scheduler"
APPLY = "--dry-run=client -o yaml | kubectl apply -f -"


def grant_command(role: str, verbs: str, resource: str, subject: str) -> str:
    """The kubectl commands remedies.rbac_fix gives for one Role in team-b."""
    return (
        f"kubectl -n team-b create role {role} --verb={verbs} --resource={resource} {APPLY} && "
        f"(kubectl -n team-b create rolebinding {role} --role={role} {subject} || "
        f"kubectl -n team-b set subject rolebinding {role} {subject})"
    )


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def now(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


@dataclass
class FakeNamespace:
    labels: dict[str, str] = field(default_factory=dict)
    terminating: bool = False
    missing: tuple[str, ...] = ()


class FakeCluster:
    """Namespaces, RBAC and faults; ``calls`` counts what the controller asked."""

    def __init__(self) -> None:
        self.namespaces: dict[str, FakeNamespace] = {}
        self.down = False
        self.list_forbidden = False
        self.cluster_wide = False
        self.calls: dict[str, int] = {"read": 0, "review": 0, "cluster": 0}

    def observe(self, name: str) -> Observation:
        ns = self.namespaces.get(name)
        if ns is None:
            return Observation(exists=False)
        return Observation(exists=True, labels=dict(ns.labels), terminating=ns.terminating)

    def selected(self) -> dict[str, Observation]:
        return {
            name: self.observe(name)
            for name, ns in self.namespaces.items()
            if all(ns.labels.get(k) == v for k, v in SELECTOR.items())
        }

    def fault(self, what: str) -> None:
        self.calls[what] += 1
        if self.down:
            raise ConnectionRefusedError("connection refused")


class FakeSource:
    """A watch that the test drives: ``relist()`` sends a snapshot, ``event()`` one event."""

    def __init__(
        self,
        cluster: FakeCluster,
        on_snapshot: Callable[[dict[str, Observation]], None],
        on_event: Callable[[str, str, Observation], None],
        on_open: Callable[[], None] = lambda: None,
    ) -> None:
        self.cluster = cluster
        self.on_snapshot = on_snapshot
        self.on_event = on_event
        self.on_open = on_open
        self.listed = False
        self._stopped = threading.Event()

    def relist(self) -> None:
        if self.cluster.list_forbidden:
            raise ListForbiddenError("403 Forbidden")
        self.on_snapshot(self.cluster.selected())
        self.listed = True
        self.on_open()

    def event(self, kind: str, name: str) -> None:
        self.on_event(kind, name, self.cluster.observe(name))

    def sync_once(self) -> None:
        if self.cluster.down:
            raise ConnectionRefusedError("connection refused")
        if not self.listed:
            self.relist()
        self._stopped.wait(0.01)

    def read(self, name: str) -> Observation | None:
        self.cluster.fault("read")
        return self.cluster.observe(name)

    def stop(self) -> None:
        self._stopped.set()


class FakeReviewer:
    def __init__(self, cluster: FakeCluster) -> None:
        self.cluster = cluster
        self.identity = "the scheduler"

    def review(self, namespace: str) -> AccessDecision:
        self.cluster.fault("review")
        ns = self.cluster.namespaces.get(namespace)
        return AccessDecision(self.identity, ns.missing if ns else ALL_MISSING)

    def may_watch_pods_everywhere(self) -> bool:
        self.cluster.fault("cluster")
        return self.cluster.cluster_wide


class FakeAccessWatch:
    """An RBAC watch the test drives: ``changed`` is the controller's handler, ``watching`` is set
    by the test."""

    def __init__(self, changed: Callable[[str | None, str], None]) -> None:
        self.changed = changed
        self.watching = False

    def loops(self, pause: Callable[[float], object]) -> dict[str, Callable[[], None]]:
        return {}

    def stop(self) -> None:
        pass


@dataclass
class Harness:
    discovery: NamespaceDiscovery
    cluster: FakeCluster
    clock: FakeClock
    plans: list[WatchPlan]

    @property
    def access_watch(self) -> FakeAccessWatch:
        watch = self.discovery._access_watch
        assert isinstance(watch, FakeAccessWatch)
        return watch

    @property
    def source(self) -> FakeSource:
        source = self.discovery._source
        assert isinstance(source, FakeSource)
        return source

    def settle(self, limit: int = 10_000) -> None:
        """Reconcile until no name is ready (delayed retries and re-checks wait for the clock)."""
        for _ in range(limit):
            if not self.discovery.process_next(timeout=0):
                return
        raise AssertionError("the queue never ran dry: a reconcile keeps re-adding its own key")

    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)
        self.settle()


def make_harness(cluster: FakeCluster | None = None, **settings: object) -> Harness:
    cluster = cluster or FakeCluster()
    cluster.namespaces.setdefault("airflow", FakeNamespace())  # home: granted, needs no label
    clock = FakeClock()
    plans: list[WatchPlan] = []
    options: dict[str, object] = {"home_namespace": "airflow", "access_recheck_interval": 60.0, **settings}
    discovery = NamespaceDiscovery(
        DiscoverySettings(**options),  # type: ignore[arg-type]
        lambda snap, event, opened: FakeSource(cluster, snap, event, opened),
        FakeReviewer(cluster),
        on_change=plans.append,
        clock=clock,
        identify=lambda: None if cluster.down else IDENTITY,
        access_watch=FakeAccessWatch,
    )
    return Harness(discovery, cluster, clock, plans)
