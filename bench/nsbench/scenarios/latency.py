"""Latency of the watch-driven and re-check paths, and the pre-launch validation cost (one executor).

Each function appends its samples to ``bench.run`` (the current repetition's record); t0 is taken
right before the admin request, the end in the executor process by the driver's hooks.
"""

# The kubernetes client and psutil are imported where used, like everywhere in the bench.
# ruff: noqa: PLC0415

from __future__ import annotations

import concurrent.futures
import random
import statistics
import time
from collections import Counter

from ..common import (
    FORBIDDEN_SELECTOR_KEY,
    SELECTOR_KEY,
    WATCHED_SELECTOR_KEY,
    fmt_p,
    log,
    ms_after,
    per_call,
)
from ..context import Bench
from ..driver import Child
from ..probes import phase
from .drain import run_drain
from .revocation import run_revoke_then_launch, run_revoke_watched


def run_latency(bench: Bench) -> None:
    trials, warm = bench.args.trials, 3
    count = trials + warm
    names = {
        "w": [f"lat-w-{i:03d}" for i in range(count)],  # label added, later removed
        "p": [f"lat-p-{i:03d}" for i in range(count)],  # label added + task launched at once
        "d": [f"lat-d-{i:03d}" for i in range(count)],  # deleted
        "v": [f"val-{i:02d}" for i in range(5)],  # forced-miss validation
        "f": [f"lat-f-{i:03d}" for i in range(count)],  # RoleBinding removed
        "b": [f"lat-b-{i:03d}" for i in range(bench.args.burst)],  # labelled all at once
        "g": [f"lat-g-{i:03d}" for i in range(count)],  # RoleBinding removed, RBAC watched
        "k": [f"lat-k-{i:03d}" for i in range(max(trials, 30) + warm)],  # RoleBinding removed, launch
        "r": [f"lat-r-{i:03d}" for i in range(bench.args.drain_trials + warm)],  # drained
    }
    started = time.monotonic()
    later = names["k"] + names["r"]  # labelled once the rows above are measured, as they were before
    bench.create_namespaces(
        names["w"] + names["p"] + names["b"] + later + ["val-unselected"], None, grant=True
    )
    bench.create_namespaces(names["d"] + names["v"], {SELECTOR_KEY: "true"}, grant=True)
    bench.create_namespaces(names["f"], {FORBIDDEN_SELECTOR_KEY: "true"}, grant=True)
    bench.create_namespaces(names["g"], {WATCHED_SELECTOR_KEY: "true"}, grant=True)
    log(
        f"created {sum(map(len, names.values())) + 1} namespaces with RoleBindings in "
        f"{time.monotonic() - started:.1f}s"
    )

    phase("latency")
    child = bench.spawn("latency", "ours", bench.executor_env("ours"))
    start = child.call("start", expect=[bench.home, *names["d"], *names["v"]])
    log(f"latency executor started in {start['t_returned'] - start['t0']:.2f}s ({start['live']} watchers)")
    for _ in range(3):  # warm the launch path: pod template, generator, connection pools
        child.call("launch", ns=bench.home)
    label_added(bench, child, names["w"], warm)
    label_added_then_launch(bench, child, names["p"], warm)
    label_removed(bench, child, names["w"], warm)
    namespace_deleted(bench, child, names["d"], warm)
    label_and_wait(bench, child, later)
    run_revoke_then_launch(bench, child, names["k"], warm)
    run_drain(bench, child, names["r"], warm)
    measure_pod_list(bench, names["p"][-1])
    run_validation(bench, child, permitted=names["p"][-1], forced_miss=names["v"])
    label_burst(bench, child, names["b"])
    bench.close_child(child)
    run_forbidden(bench, names["f"], warm)
    run_revoke_watched(bench, names["g"], warm)


def label_added(bench: Bench, child: Child, names: list[str], warm: int) -> None:
    """Label applied -> watcher running (and -> state permitted)."""
    lat = bench.run["latency"]
    watch, opened, permitted, patch = [], [], [], []
    for i, ns in enumerate(names):
        time.sleep(random.uniform(0.02, 0.06))
        t0 = time.monotonic()
        bench.label(ns, "true")
        t_ack = time.monotonic()
        t = child.call("wait", ns=ns, kind="watch-start", after=t0)["t"]
        to = child.call("wait", ns=ns, kind="watch-open", after=t0)["t"]
        tp = child.call("wait", ns=ns, kind="state:permitted", after=t0, timeout=1)["t"]
        if i >= warm:
            watch.append(ms_after(t, t0))
            opened.append(ms_after(to, t0))
            permitted.append(ms_after(tp, t0))
            patch.append((t_ack - t0) * 1000)
    lat["label_to_watcher"] = watch
    lat["label_to_watch_open"] = opened
    lat["label_to_permitted"] = permitted
    lat["label_patch_rtt"] = patch
    log(
        f"label -> watcher running: p50 {fmt_p(watch, 50)} p99 {fmt_p(watch, 99)} ms; "
        f"-> watch open: p50 {fmt_p(opened, 50)} p99 {fmt_p(opened, 99)} ms"
    )


def label_and_wait(bench: Bench, child: Child, names: list[str], timeout: float = 60.0) -> None:
    """Label ``names`` (16 PATCHes in flight) and wait until each one's pod watch is open."""
    sent = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda ns: bench.label(ns, "true"), names))
    deadline = time.monotonic() + timeout
    while not all(child.call("first", items=[[ns, "watch-open", sent] for ns in names])["t"]):
        if time.monotonic() > deadline:
            raise TimeoutError(f"not every one of {len(names)} namespaces labelled got its watch open")
        time.sleep(0.2)


def label_burst(bench: Bench, child: Child, names: list[str]) -> None:
    """All of ``names`` labelled at once (16 PATCHes in flight) -> each one's pod watch open."""
    phase("label burst")
    sent: dict[str, float] = {}
    acked: dict[str, float] = {}

    def patch(ns: str) -> None:
        sent[ns] = time.monotonic()
        bench.label(ns, "true")
        acked[ns] = time.monotonic()

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        list(pool.map(patch, names))
    deadline = time.monotonic() + 60
    while True:
        opened = child.call("first", items=[[ns, "watch-open", sent[ns]] for ns in names])["t"]
        if all(opened) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    lat = bench.run["latency"]
    lat["burst_to_watch_open"] = values = [ms_after(t, sent[ns]) for ns, t in zip(names, opened, strict=True)]
    # Where the time went: the API server answered the PATCH, the label seen and reviewed
    # (permitted), the watcher thread started.
    lat["burst_patch_rtt"] = [(acked[ns] - sent[ns]) * 1000 for ns in names]
    for kind, key in (("state:permitted", "burst_to_permitted"), ("watch-start", "burst_to_watcher")):
        found = child.call("first", items=[[ns, kind, sent[ns]] for ns in names])["t"]
        lat[key] = [ms_after(t, sent[ns]) for ns, t in zip(names, found, strict=True)]
    log(
        f"{len(names)} namespaces labelled at once -> each watch open: p50 {fmt_p(values, 50)} "
        f"p99 {fmt_p(values, 99)} ms (permitted p50 {fmt_p(lat['burst_to_permitted'], 50)} p99 "
        f"{fmt_p(lat['burst_to_permitted'], 99)} ms, watcher started p50 "
        f"{fmt_p(lat['burst_to_watcher'], 50)} p99 {fmt_p(lat['burst_to_watcher'], 99)} ms)"
    )


def label_added_then_launch(bench: Bench, child: Child, names: list[str], warm: int) -> None:
    """Label applied, a task launched into the namespace at once -> its pod created."""
    lat = bench.run["latency"]
    pods, seen, launch_only, on_demand, refused = [], [], [], 0, 0
    for i, ns in enumerate(names):
        time.sleep(random.uniform(0.02, 0.06))
        t0 = time.monotonic()
        bench.label(ns, "true")
        answer = child.call("launch", ns=ns)
        # The end-to-end trial: the pod is only followed once the namespace's watcher has seen it.
        t_seen = child.call("wait", ns=ns, kind="pod-seen", after=t0)["t"] if answer["pod"] else None
        if i >= warm:
            pods.append(ms_after(answer["t_created"], t0))
            seen.append(ms_after(t_seen, t0))
            launch_only.append(ms_after(answer["t_created"], answer["t_recv"]))
            on_demand += answer["on_demand"] > 0
            refused += answer["refused"] is not None
    lat["label_to_pod"] = pods
    lat["label_to_pod_seen"] = seen
    lat["launch_only"] = launch_only
    lat["label_to_pod_on_demand"] = on_demand
    lat["label_to_pod_refused"] = refused
    log(
        f"label -> first pod created: p50 {fmt_p(pods, 50)} p99 {fmt_p(pods, 99)} ms, seen by its "
        f"watcher: p50 {fmt_p(seen, 50)} p99 {fmt_p(seen, 99)} ms "
        f"({on_demand} of {len(pods)} needed the on-demand look, {refused} refused)"
    )


def label_removed(bench: Bench, child: Child, names: list[str], warm: int) -> None:
    """Label removed -> watcher stopped (and its thread exited)."""
    lat = bench.run["latency"]
    stop, exit_ = [], []
    for i, ns in enumerate(names):
        time.sleep(random.uniform(0.02, 0.06))
        t0 = time.monotonic()
        bench.label(ns, None)
        t = child.call("wait", ns=ns, kind="watch-stop", after=t0)["t"]
        te = child.call("wait", ns=ns, kind="thread-exit", after=t0, timeout=5)["t"]
        if i >= warm:
            stop.append(ms_after(t, t0))
            exit_.append(ms_after(te, t0))
    lat["unlabel_to_stopped"] = stop
    lat["unlabel_to_thread_exit"] = exit_
    log(f"label removed -> watcher stopped: p50 {fmt_p(stop, 50)} p99 {fmt_p(stop, 99)} ms")


def namespace_deleted(bench: Bench, child: Child, names: list[str], warm: int) -> None:
    """Namespace deleted -> watcher stopped (it stops on the Terminating transition)."""
    lat = bench.run["latency"]
    deleted = []
    for i, ns in enumerate(names):
        time.sleep(random.uniform(0.02, 0.06))
        t0 = time.monotonic()
        bench.core.delete_namespace(ns)
        t = child.call("wait", ns=ns, kind="watch-stop", after=t0)["t"]
        if i >= warm:
            deleted.append(ms_after(t, t0))
    lat["delete_to_stopped"] = deleted
    log(f"namespace deleted -> watcher stopped: p50 {fmt_p(deleted, 50)} p99 {fmt_p(deleted, 99)} ms")
    started = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        list(pool.map(bench.cluster.finish_namespace_deletion, names))
    time.sleep(0.5)
    states = Counter(child.call("state_of", ns=ns)["state"] for ns in names)
    lat["delete_finished"] = {
        "seconds": time.monotonic() - started,
        "states": dict(states),
    }
    log(
        f"finished deleting {len(names)} namespaces via the harness in "
        f"{time.monotonic() - started:.1f}s; their states now: {dict(states)}"
    )


def measure_pod_list(bench: Bench, namespace: str, samples: int = 30) -> None:
    """What the drain check's pod LIST costs right after a namespace write, as the stop paths see it.

    Without a resourceVersion the LIST is a consistent read: kube-apiserver serves it from its
    watch cache only once that cache has caught up with etcd's latest revision, which after a
    write to another resource waits for an etcd progress notification. resourceVersion=0 is
    served from the cache at once.
    """
    from kubernetes import client

    core = client.CoreV1Api(bench.identity.api_client)
    selector = {
        "label_selector": "airflow-worker=0,airflow_executor_done!=True",
        "field_selector": "status.phase!=Succeeded,status.phase!=Failed",
    }
    out: dict[str, list[float]] = {"consistent": [], "rv0": []}
    for i in range(samples * 2):
        mode = "consistent" if i % 2 == 0 else "rv0"
        bench.label(namespace, str(i), key="nsd-bench-touch")
        extra = {"resource_version": "0"} if mode == "rv0" else {}
        started = time.monotonic()
        core.list_namespaced_pod(namespace, **selector, **extra)
        out[mode].append((time.monotonic() - started) * 1000)
        time.sleep(0.02)
    bench.run["latency"]["pod_list_after_write"] = out
    log(
        f"pod LIST right after a namespace write: consistent p50 {fmt_p(out['consistent'], 50)} ms, "
        f"resourceVersion=0 p50 {fmt_p(out['rv0'], 50)} ms"
    )


def run_validation(bench: Bench, child: Child, permitted: str, forced_miss: list[str]) -> None:
    phase("validation")
    answer = child.call(
        "validation",
        timeout=300,
        permitted=permitted,
        forced_miss=forced_miss,
        unselected="val-unselected",
        iterations=bench.args.check_iterations,
        miss_iterations=bench.args.miss_iterations,
    )
    bench.run["validation"] = answer
    log(
        f"check() cache hit: {answer['hit']['best']:.2f} us (best of 5 x {answer['hit']['number']}); "
        f"forced miss p50 {statistics.median(answer['miss']['samples_us']) / 1000:.2f} ms "
        f"(API per call: {per_call(answer['miss']['api'], len(answer['miss']['samples_us']))})"
    )


def run_forbidden(bench: Bench, names: list[str], warm: int) -> None:
    interval = bench.args.recheck_interval
    phase("RoleBinding removed")
    child = bench.spawn(
        "forbidden",
        "ours",
        bench.executor_env("ours", FORBIDDEN_SELECTOR_KEY, access_recheck_interval=str(interval)),
    )
    start = child.call("start", expect=[bench.home, *names])
    log(
        f"forbidden executor (access_recheck_interval={interval:g}s, jitter 0.1) started with "
        f"{start['live']} watchers"
    )
    time.sleep(interval)  # past the first re-check, whose delay is drawn from [0.5, 1] x interval
    revoked: list[tuple[str, float]] = []
    for ns in names:
        time.sleep(bench.args.revoke_spacing)
        t0 = time.monotonic()
        bench.rbac.delete_namespaced_role_binding("airflow-task-pods", ns)
        revoked.append((ns, t0))
    deadline = time.monotonic() + interval * 1.1 + 5
    while True:
        found = child.call("first", items=[[ns, "state:forbidden", t0] for ns, t0 in revoked])["t"]
        if all(found) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    stopped = child.call("first", items=[[ns, "watch-stop", t0] for ns, t0 in revoked])["t"]
    values = [ms_after(t, t0) for (_, t0), t in zip(revoked, found, strict=True)][warm:]
    lat = bench.run["latency"]
    lat["revoke_to_forbidden"] = values
    lat["revoke_to_stopped"] = [ms_after(t, t0) for (_, t0), t in zip(revoked, stopped, strict=True)][warm:]
    lat["recheck_interval"] = interval
    log(
        f"RoleBinding removed -> forbidden: p50 {fmt_p(values, 50)} p99 {fmt_p(values, 99)} ms "
        f"(interval {interval:g}s)"
    )
    bench.close_child(child)
