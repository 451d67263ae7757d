"""Property: whatever happens to namespaces, running pod watchers are exactly the watched namespaces.

A small model of a cluster (labels, RBAC, deletion, task pods) is driven by random events. After
each event every namespace is re-decided with :func:`decide` into a :class:`StateTable`, pods are
launched only where :func:`check_pod_namespace` allows, and a :class:`WatcherSet` of fake watchers
is reconciled to ``table.watched()``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hypothesis import given, settings
from hypothesis import strategies as st
from kubernetes.client import models as k8s

from airflow_provider_nsdiscovery.config import DiscoverySettings
from airflow_provider_nsdiscovery.discovery.state import (
    AccessDecision,
    NamespaceStatus,
    Observation,
    State,
    StateTable,
    decide,
)
from airflow_provider_nsdiscovery.validation import NamespaceRefusal, check_pod_namespace
from airflow_provider_nsdiscovery.watchers.reconciler import WatcherSet

SA = "system:serviceaccount:airflow:scheduler"
SETTINGS = DiscoverySettings(home_namespace="airflow", exclude_namespaces=("kube-system",))
TEAMS = ("team-a", "team-b")
NAMESPACES = ("airflow", "kube-system", *TEAMS)
# RBAC the scheduler may hold in a namespace, as the access review would report it.
MISSING = {
    "full": (),
    "no-create": ("create pods",),  # can still list and watch
    "none": (
        "create pods",
        "get pods",
        "list pods",
        "watch pods",
        "patch pods",
        "delete pods",
        "get pods/log",
    ),
}
EVENTS = (
    "label",
    "unlabel",
    "grant",
    "revoke-create",
    "revoke-all",
    "delete",
    "recreate",
    "pod-start",
    "pod-finish",
    "watcher-crash",
)


class FakeWatcher:
    def __init__(self, namespace: str) -> None:
        self.namespace = namespace
        self.started = 0
        self.terminated = 0
        self.alive = False

    def start(self) -> None:
        self.started += 1
        self.alive = True

    def is_alive(self) -> bool:
        return self.alive

    def terminate(self) -> None:
        self.terminated += 1
        self.alive = False

    def join(self, timeout: float | None = None) -> None:
        pass


@dataclass
class Namespace:
    exists: bool = True
    labelled: bool = False
    terminating: bool = False
    rbac: str = "none"
    pods: int = 0

    def observation(self) -> Observation:
        if not self.exists:
            return Observation(exists=False)
        labels = {"airflow-enabled": "true"} if self.labelled else {}
        return Observation(exists=True, labels=labels, terminating=self.terminating)

    def access(self) -> AccessDecision:
        return AccessDecision(SA, MISSING[self.rbac])

    def countable_pods(self) -> int:
        """What listing the executor's pods returns: nothing if listing them is refused."""
        return self.pods if "list pods" not in MISSING[self.rbac] else 0


@dataclass
class World:
    cluster: dict[str, Namespace]
    table: StateTable = field(default_factory=StateTable)
    made: list[FakeWatcher] = field(default_factory=list)
    watchers: WatcherSet[FakeWatcher] = field(init=False)

    def __post_init__(self) -> None:
        self.watchers = WatcherSet(self._make)

    def _make(self, namespace: str) -> FakeWatcher:
        watcher = FakeWatcher(namespace)
        self.made.append(watcher)
        return watcher

    def apply(self, event: str, name: str) -> None:
        ns = self.cluster[name]
        if event == "label" and ns.exists:
            ns.labelled = True
        elif event == "unlabel":
            ns.labelled = False
        elif event == "grant" and ns.exists:
            ns.rbac = "full"
        elif event == "revoke-create" and ns.exists:
            ns.rbac = "no-create"
        elif event == "revoke-all":
            ns.rbac = "none"
        elif event == "delete" and ns.exists and not ns.terminating:
            ns.terminating = True
        elif event == "delete" and ns.exists:  # finalizers done: the namespace and all in it are gone
            self.cluster[name] = Namespace(exists=False)
        elif event == "recreate" and not ns.exists:
            self.cluster[name] = Namespace()
        elif event == "pod-start":
            pod = k8s.V1Pod(metadata=k8s.V1ObjectMeta(name="task", namespace=name))
            try:
                check_pod_namespace(pod, self._lookup)
            except NamespaceRefusal:
                return
            ns.pods += 1
        elif event == "pod-finish" and ns.pods:
            ns.pods -= 1
        elif event == "watcher-crash" and name in self.watchers.running:
            self.watchers.running[name].alive = False

    def _lookup(self, name: str) -> NamespaceStatus:
        status = self.table.get(name)
        assert status is not None
        return status

    def refresh(self) -> dict[str, tuple[NamespaceStatus | None, NamespaceStatus]]:
        changes = {}
        for name, ns in self.cluster.items():
            previous = self.table.get(name)
            status = decide(
                name,
                SETTINGS,
                ns.observation(),
                ns.access(),
                previous=previous,
                active_pods=ns.countable_pods(),
            )
            self.table.put(status)
            changes[name] = (previous, status)
        self.watchers.reconcile(self.table.watched())
        return changes


# Weighted towards usable namespaces with running pods, where the interesting transitions start.
_namespaces = st.builds(
    Namespace,
    exists=st.sampled_from([True, True, True, False]),
    labelled=st.sampled_from([True, True, False]),
    rbac=st.sampled_from(["full", "full", "no-create", "none"]),
    pods=st.integers(0, 2),
)


def _cluster(teams: dict[str, Namespace]) -> dict[str, Namespace]:
    cluster = {"airflow": Namespace(), "kube-system": Namespace(labelled=True, rbac="full")}
    for name, ns in teams.items():
        cluster[name] = ns if ns.exists else Namespace(exists=False)
    return cluster


_clusters = st.fixed_dictionaries({name: _namespaces for name in TEAMS}).map(_cluster)
_events = st.tuples(
    st.sampled_from((*EVENTS, "pod-start", "pod-start")), st.sampled_from((*NAMESPACES, *TEAMS))
)


@settings(max_examples=300, deadline=None, database=None)
@given(cluster=_clusters, events=st.lists(_events, max_size=60))
def test_running_watchers_always_equal_the_watched_namespaces(
    cluster: dict[str, Namespace], events: list[tuple[str, str]]
):
    world = World(cluster)
    world.refresh()
    for event, name in events:
        world.apply(event, name)
        changes = world.refresh()

        watched = {n for n, s in world.table.snapshot().items() if s.watched}
        assert set(world.watchers.running) == watched == world.table.watched()
        assert "airflow" in watched
        assert "kube-system" not in watched

        running = {id(w) for w in world.watchers.running.values()}
        for watcher in world.made:
            assert watcher.started == 1
            if id(watcher) in running:
                assert watcher.alive
                assert watcher.terminated == 0
            else:
                assert not watcher.alive, f"stopped watcher for {watcher.namespace} left alive"
                assert watcher.terminated == 1

        for ns_name, (previous, status) in changes.items():
            ns = world.cluster[ns_name]
            if status.state is State.PERMITTED and ns_name != "airflow":
                assert (ns.exists, ns.labelled, ns.terminating, ns.rbac) == (True, True, False, "full")
            # A watcher is never taken away from running task pods while it could still watch them.
            if previous is not None and previous.watched and ns.pods and not status.watched:
                assert not ns.access().can_watch, f"{ns_name}: {previous.state} -> {status.message}"
