"""Steady state at the largest N, ours vs upstream: what an idle executor costs the API server per hour.

Run in the control plane of the largest N's first repetition, after its start-up measurements, with a
fresh child each: ours as the product recommends (the scheduler may also watch RBAC objects,
deploy/rbac-watch.yaml, default settings), then upstream's KubernetesExecutor in multi_namespace_mode
at N if N processes fit in half the memory, else at the largest N that does. No task runs: the
window shows the cost of keeping N namespaces watched and access-reviewed.
"""

# The kubernetes client is imported where used, like everywhere in the bench.
# ruff: noqa: PLC0415

from __future__ import annotations

import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from airflow_provider_nsdiscovery.discovery.permissions import RBAC_WATCH_RULE

from ..common import log
from ..context import Bench
from ..harness import SCHEDULER_RESOURCES, ApiMetrics, request_delta, scheduler_rules
from ..probes import ConnectionSampler, load_mark, other_load, phase, process_tree, watch_opens
from .scale import tree_cpu, upstream_env, upstream_size

# The RBAC objects ours watches are counted too: their watches end and re-open like pod watches.
_RESOURCES = SCHEDULER_RESOURCES | frozenset(RBAC_WATCH_RULE["resources"])


def run_steady(bench: Bench, n: int, names: list[str], per_process: dict[str, float] | None) -> None:
    """Ours, then upstream, each idle for ``--steady-seconds`` in ``--steady-bucket`` buckets."""
    metrics = ApiMetrics(bench.cluster, resources=_RESOURCES)
    grant_rbac_watch(bench)
    out: dict[str, Any] = {
        "n": n,
        "seconds": bench.args.steady_seconds,
        "bucket_s": bench.args.steady_bucket,
        "min_request_timeout": apiserver_flag(bench, "--min-request-timeout"),
        "impls": {"ours": measure_idle(bench, metrics, "ours", names)},
    }
    n_up, why = upstream_size(bench, n, per_process)
    out["upstream_n"], out["upstream_why"] = n_up, why
    log(f"steady state: upstream at N={n_up} ({why})")
    if n_up:
        out["impls"]["upstream"] = measure_idle(bench, metrics, "upstream", names[:n_up])
    bench.results["steady"] = out


def apiserver_flag(bench: Bench, flag: str) -> str | None:
    """The value kube-apiserver was started with for ``flag``: None when left at its default,
    "unknown" for a control plane whose API server is not a process of its own here (k3s)."""
    try:
        argv = Path(f"/proc/{bench.cluster.apiserver_pid}/cmdline").read_bytes().decode().split("\0")
    except (AttributeError, RuntimeError, OSError):
        return "unknown"
    return next((a.split("=", 1)[1] for a in argv if a.startswith(f"{flag}=")), None)


def grant_rbac_watch(bench: Bench) -> None:
    """The scheduler identity's cluster-wide rules plus the optional RBAC watch rule, as
    deploy/rbac-watch.yaml grants it; returns once in force."""
    from kubernetes import client

    reads, _ = scheduler_rules()
    rule = client.V1PolicyRule(
        api_groups=RBAC_WATCH_RULE["apiGroups"],
        resources=RBAC_WATCH_RULE["resources"],
        verbs=RBAC_WATCH_RULE["verbs"],
    )
    bench.cluster.grant_cluster_wide(bench.identity, [*reads, rule])


def measure_idle(bench: Bench, metrics: ApiMetrics, impl: str, names: list[str]) -> dict[str, Any]:
    seconds, bucket = bench.args.steady_seconds, bench.args.steady_bucket
    n = len(names)
    expect = [bench.home, *names]
    env = bench.executor_env("ours") if impl == "ours" else upstream_env(bench, expect)
    phase(f"steady {impl} N={n}")
    m0 = metrics.scrape()
    base_watches = m0["longrunning"]["WATCH pods namespace"]
    child = bench.spawn(f"steady-{impl}-{n}", impl, env)
    start = child.call("start", timeout=900, expect=expect)
    t0 = start["t0"]
    deadline = time.monotonic() + 600
    while metrics.scrape()["longrunning"]["WATCH pods namespace"] - base_watches < len(expect):
        if time.monotonic() > deadline:
            raise TimeoutError(f"steady {impl}: not all {len(expect)} pod watches opened in 600 s")
        time.sleep(0.5)
    log(f"steady {impl} N={n}: all {len(expect)} pod watches open {time.monotonic() - t0:.1f}s after start()")
    port = urlsplit(bench.cluster.host).port
    assert port is not None, bench.cluster.host
    conns = ConnectionSampler(port, child.pid)
    load = load_mark()
    rows = []
    previous, cpu_prev, conn_prev = metrics.scrape(), tree_cpu(bench, child), conns.read()
    # The executor's own watches: those open now that were not before it started (the API server
    # watches RBAC objects itself, too).
    long_open = {
        k: v - m0["longrunning"][k]
        for k, v in previous["longrunning"].items()
        if k.startswith("WATCH") and v > m0["longrunning"][k]
    }
    status0 = child.call("status")
    counters0 = status0.get("counters", {})
    first = previous["t"]
    next_at = first + bucket
    try:
        while next_at <= first + seconds + 0.01:
            time.sleep(max(0.0, next_at - time.monotonic()))
            current, cpu_now, conn_now = metrics.scrape(), tree_cpu(bench, child), conns.read()
            span = current["t"] - previous["t"]
            row = {
                "from_s": previous["t"] - t0,
                "to_s": current["t"] - t0,
                "requests": dict(request_delta(previous, current)),
                "new_conns": {k: conn_now[k] - conn_prev[k] for k in conn_now},
                "cpu_pct": {k: (cpu_now[k] - cpu_prev[k]) / span * 100 for k in cpu_now},
            }
            rows.append(row)
            log(
                f"  {impl} {row['from_s']:6.0f}-{row['to_s']:6.0f}s: "
                + (", ".join(f"{k} {v}" for k, v in sorted(row["requests"].items())) or "no requests")
                + f"; new connections {row['new_conns']['new_tree']} executor / "
                f"{row['new_conns']['new_all']} all; CPU % "
                + ", ".join(f"{k} {v:.0f}" for k, v in row["cpu_pct"].items())
            )
            previous, cpu_prev, conn_prev, next_at = current, cpu_now, conn_now, next_at + bucket
    finally:
        conns.stop()
    status = child.call("status")
    counters1 = status.get("counters", {})
    result = {
        "impl": impl,
        "n": n,
        "watchers": status["watchers"],
        "start_returned_s": start["t_returned"] - t0,
        "window_s": (first - t0, previous["t"] - t0),
        "rows": rows,
        "long_running_open": long_open,
        # Discovery's own verdict (ours only): RBAC changes seen as they happen, so periodic re-checks
        # slow to the backstop interval.
        "access_watched": (status0.get("access_watched"), status.get("access_watched")),
        "client_counters": {
            k: v - counters0.get(k, 0) for k, v in counters1.items() if v != counters0.get(k, 0)
        },
        "watch_opens": watch_opens(child.log_path, start["wall0"]),
        "tree": process_tree(child.pid),
        "other_load": other_load(load),
    }
    bench.close_child(child)
    return result
