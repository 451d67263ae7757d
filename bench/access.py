#!/usr/bin/env python
"""Access changes, measured: RoleBinding removed -> namespace forbidden, and steady review load.

One run on the local control plane (kube-apiserver + etcd from harness/kubeharness), the scheduler acting
through real ServiceAccount tokens, discovery at its default settings. Side by side, in the same run:

- the physical floor: a bare watch on RoleBindings (the kubernetes client, nothing of ours) from
  the DELETE being sent to its DELETED event, and one SelfSubjectRulesReview round trip;
- ours with the optional RBAC watch (deploy/rbac-watch.yaml): DELETE sent -> status ``forbidden``;
- ours without it, which is how the previous release worked: periodic re-checks only;
- access reviews per second in steady state at N namespaces, both ways.

Upstream's KubernetesExecutor reviews no access at all (a revoked binding shows only as a failed pod
create), so there is no upstream row to measure. The page (docs/benchmarks-access.md) holds only
numbers this run measured.

    python -m bench.access [--namespaces 1000] [--trials 100] [--steady-seconds 120]
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import logging
import os
import statistics
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from kubernetes import client, watch
from urllib3.exceptions import ProtocolError

from airflow_provider_nsdiscovery.config import DiscoverySettings
from airflow_provider_nsdiscovery.discovery.controller import NamespaceDiscovery
from airflow_provider_nsdiscovery.discovery.permissions import RBAC_WATCH_RULE
from airflow_provider_nsdiscovery.discovery.status import State
from airflow_provider_nsdiscovery.discovery.wiring import connect
from kubeharness import ENABLE_HINT, NAMESPACE_READ_RULES, Cluster, Identity, resolve
from tests.harness.fleet import team_namespaces

DOC = Path(__file__).resolve().parents[1] / "docs" / "benchmarks-access.md"
LABEL = "nsd-bench-access"
REVIEWS = "selfsubjectrulesreviews"
GRANT = "bench-pods"


@dataclass
class Latencies:
    seconds: list[float] = field(default_factory=list)

    @property
    def p99(self) -> float:
        ordered = sorted(self.seconds)
        return ordered[round(0.99 * (len(ordered) - 1))] if ordered else float("nan")

    def row(self, what: str) -> str:
        if not self.seconds:
            return f"| {what} | 0 | - | - | - |"
        ms = [s * 1000 for s in self.seconds]
        return f"| {what} | {len(ms)} | {statistics.median(ms):.1f} | {self.p99 * 1000:.1f} | {max(ms):.1f} |"


@dataclass
class Steady:
    watched: bool = False
    decided_seconds: float = 0.0
    reviews_per_second: float = 0.0

    def row(self, mode: str) -> str:
        return f"| {mode} | {self.watched} | {self.decided_seconds:.1f} | {self.reviews_per_second:.2f} |"


@dataclass
class Run:
    floor_review: Latencies
    floor_event: Latencies = field(default_factory=Latencies)
    revoke_watched: Latencies = field(default_factory=Latencies)
    revoke_polled: Latencies = field(default_factory=Latencies)
    steady: dict[str, Steady] = field(default_factory=dict)
    loads: list[float] = field(default_factory=list)


def _load() -> float:
    return os.getloadavg()[0]


def _discovery(identity: Identity) -> NamespaceDiscovery:
    settings = DiscoverySettings(home_namespace=identity.namespace, label_selector=f"{LABEL}=true")
    discovery = connect(settings, identity.api_client)
    discovery.start()
    return discovery


def _state(discovery: NamespaceDiscovery, name: str) -> State | None:
    status = discovery.status(name)
    return status.state if status else None


def _is(discovery: NamespaceDiscovery, name: str, state: State) -> bool:
    return _state(discovery, name) is state


def _wait(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(0.0005)


class BindingWatch:
    """The floor: a bare client watch on RoleBindings, recording when each DELETED arrives."""

    def __init__(self, cluster: Cluster) -> None:
        self._api = client.RbacAuthorizationV1Api(cluster.admin_api_client())
        self.deleted: dict[str, float] = {}
        self._stop = watch.Watch()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        time.sleep(0.5)  # the watch is open before the first trial

    def _run(self) -> None:
        with contextlib.suppress(ProtocolError):  # the control plane stopping under it
            for event in self._stop.stream(
                self._api.list_role_binding_for_all_namespaces, timeout_seconds=3600
            ):
                if event["type"] == "DELETED":
                    self.deleted[event["object"].metadata.namespace] = time.perf_counter()

    def stop(self) -> None:
        self._stop.stop()


def revoke_trials(
    cluster: Cluster, discovery: NamespaceDiscovery, names: list[str], floor: BindingWatch, timeout: float
) -> tuple[Latencies, Latencies]:
    """Delete each namespace's RoleBinding in turn; time the bare watch's event and our verdict."""
    rbac = client.RbacAuthorizationV1Api(cluster.admin_api_client())
    ours, bare = Latencies(), Latencies()
    for name in names:
        assert _state(discovery, name) is State.PERMITTED, name
        sent = time.perf_counter()
        rbac.delete_namespaced_role_binding(GRANT, name)
        _wait(functools.partial(_is, discovery, name, State.FORBIDDEN), timeout, f"{name} forbidden")
        ours.seconds.append(time.perf_counter() - sent)
        _wait(functools.partial(floor.deleted.__contains__, name), 10, f"the DELETED event of {name}")
        bare.seconds.append(floor.deleted[name] - sent)
        time.sleep(0.05)
    return ours, bare


def polled_trials(cluster: Cluster, discovery: NamespaceDiscovery, names: list[str]) -> Latencies:
    """Without the RBAC watch every binding is removed at once; each is noticed at its own re-check."""
    rbac = client.RbacAuthorizationV1Api(cluster.admin_api_client())
    sent = time.perf_counter()
    for name in names:
        rbac.delete_namespaced_role_binding(GRANT, name)
    result = Latencies()
    pending = set(names)
    deadline = time.monotonic() + 3 * discovery.settings.access_recheck_interval
    while pending and time.monotonic() < deadline:
        for name in list(pending):
            status = discovery.status(name)
            if status is not None and status.state is State.FORBIDDEN:
                result.seconds.append(time.perf_counter() - sent)
                pending.discard(name)
        time.sleep(0.01)
    return result


def review_rate(discovery: NamespaceDiscovery, seconds: float) -> float:
    before = discovery.counters.requests[REVIEWS]
    time.sleep(seconds)
    return (discovery.counters.requests[REVIEWS] - before) / seconds


def one_review(identity: Identity, namespace: str, count: int = 50) -> Latencies:
    api = client.AuthorizationV1Api(identity.api_client)
    result = Latencies()
    for _ in range(count):
        started = time.perf_counter()
        api.create_self_subject_rules_review(
            client.V1SelfSubjectRulesReview(spec=client.V1SelfSubjectRulesReviewSpec(namespace=namespace))
        )
        result.seconds.append(time.perf_counter() - started)
    return result


@contextlib.contextmanager
def started(cluster: Cluster) -> Iterator[Cluster]:
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--namespaces", type=int, default=1000)
    parser.add_argument("--trials", type=int, default=100)
    parser.add_argument("--polled-trials", type=int, default=20)
    parser.add_argument("--steady-seconds", type=float, default=120.0)
    parser.add_argument("--output", type=Path, default=DOC)
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)  # a thousand namespaces decided: no line each
    cluster = resolve()
    if cluster is None:
        print(f"cannot run: {ENABLE_HINT}", file=sys.stderr)
        return 2
    with started(cluster):
        tag = uuid.uuid4().hex[:6]
        reads = list(NAMESPACE_READ_RULES)
        watcher = cluster.service_account_client(
            f"bw-{tag}", "scheduler", cluster_rules=[*reads, *_rbac_rules()]
        )
        poller = cluster.service_account_client(f"bp-{tag}", "scheduler", cluster_rules=reads)
        print(f"creating {args.namespaces} labelled namespaces with RoleBindings", flush=True)
        names = team_namespaces(
            cluster, args.namespaces, f"ba-{tag}", [watcher, poller], label=LABEL, role=GRANT
        )
        run = Run(floor_review=one_review(watcher, names[0]))
        for mode, identity in (("RBAC watch", watcher), ("polling only", poller)):
            print(f"{mode}: discovery starting", flush=True)
            run.steady[mode] = steady = Steady()
            began = time.monotonic()
            discovery = _discovery(identity)
            decided = functools.partial(lambda d: all(d.status(n) is not None for n in names), discovery)
            _wait(decided, 300, "every namespace decided")
            steady.decided_seconds = time.monotonic() - began
            # The first re-checks are spread over [0.5, 1] x the interval; the steady state follows.
            time.sleep(max(0.0, discovery.settings.access_recheck_interval + 10 - (time.monotonic() - began)))
            run.loads.append(os.getloadavg()[0])
            steady.reviews_per_second = review_rate(discovery, args.steady_seconds)
            run.loads.append(os.getloadavg()[0])
            steady.watched = discovery.access_watched
            if identity is watcher:
                floor = BindingWatch(cluster)
                run.revoke_watched, run.floor_event = revoke_trials(
                    cluster, discovery, names[: args.trials], floor, timeout=30
                )
                floor.stop()
            else:
                later = names[args.trials : args.trials + args.polled_trials]
                run.revoke_polled = polled_trials(cluster, discovery, later)
            discovery.stop()
    args.output.write_text(_page(args, run))
    print(args.output.read_text())
    return 0


def _rbac_rules() -> list[client.V1PolicyRule]:
    rule = RBAC_WATCH_RULE
    return [
        client.V1PolicyRule(api_groups=rule["apiGroups"], resources=rule["resources"], verbs=rule["verbs"])
    ]


def _page(args: argparse.Namespace, run: Run) -> str:
    watched = run.steady["RBAC watch"]
    p99 = run.revoke_watched.p99
    return "\n".join(
        [
            "# Access changes: measured",
            "",
            f"Generated by `python -m bench.access --namespaces {args.namespaces} --trials {args.trials} "
            f"--polled-trials {args.polled_trials} --steady-seconds {args.steady_seconds:.0f}`. Every number "
            f"below was measured in that one run, on {os.cpu_count()} CPUs; load average "
            f"{min(run.loads):.1f}-{max(run.loads):.1f} during the steady windows (all processes). "
            "Default settings: `access_recheck_interval` 60 s, `access_backstop_interval` 1800 s.",
            "",
            "## RoleBinding deleted -> namespace forbidden",
            "",
            "Timed from the DELETE request being sent. The floor rows use the kubernetes client alone.",
            "",
            "| path | trials | p50 ms | p99 ms | max ms |",
            "|---|---|---|---|---|",
            run.floor_event.row("floor: bare RoleBinding watch, DELETED event received"),
            run.floor_review.row("floor: one SelfSubjectRulesReview"),
            run.revoke_watched.row("ours, RBAC watched: status `forbidden`"),
            run.revoke_polled.row("ours, polling only (bindings removed together): status `forbidden`"),
            "",
            "Goal: p99 < 250 ms at default settings, RBAC watched: "
            f"{'met' if p99 < 0.25 else 'missed'} ({p99 * 1000:.1f} ms).",
            "",
            f"## Access reviews in steady state, {args.namespaces} namespaces",
            "",
            f"Counted over {args.steady_seconds:.0f} s, once the first re-checks (spread over 0.5-1 x the "
            "interval after start) are over.",
            "",
            "| mode | RBAC watched | all decided after start, s | reviews per second |",
            "|---|---|---|---|",
            *(steady.row(mode) for mode, steady in run.steady.items()),
            "",
            f"Goal: < 1 per second at N=1000, RBAC watched: "
            f"{'met' if watched.reviews_per_second < 1 else 'missed'} at N={args.namespaces} "
            f"({watched.reviews_per_second:.2f} per second).",
            "",
            "Raw (ms, RBAC watched): " + json.dumps([round(s * 1000, 2) for s in run.revoke_watched.seconds]),
            "",
        ]
    )


if __name__ == "__main__":
    sys.exit(main())
