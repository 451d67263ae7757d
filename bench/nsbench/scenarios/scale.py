"""Start-up at N permitted namespaces, ours vs upstream, and the steady state at the largest N."""

# The kubernetes client and psutil are imported where used, like everywhere in the bench.

from __future__ import annotations

import time
from typing import Any

from ..common import MIB, SELECTOR_KEY, fmt_s, log
from ..context import Bench
from ..driver import Child
from ..harness import request_delta
from ..probes import (
    cpu_seconds,
    load_mark,
    mem_available,
    other_load,
    phase,
    process_tree,
    watch_opens,
)
from .loop_cost import loop_cost_wanted, measure_loop_cost


def run_scale(bench: Bench) -> None:
    """Per N and repetition a fresh control plane: N labelled namespaces, then ours, then upstream."""
    per_process: dict[str, float] | None = None
    for n in bench.args.sizes:
        for repeat in range(bench.args.repeats):
            bench.start_cluster()
            try:
                names = [f"s{n}-{i:04d}" for i in range(n)]
                started = time.monotonic()
                bench.create_namespaces(names, {SELECTOR_KEY: "true"}, grant=True)
                log(
                    f"N={n} run {repeat + 1}/{bench.args.repeats}: created {n} labelled namespaces with "
                    f"RoleBindings in {time.monotonic() - started:.1f}s"
                )
                steady = repeat == 0 and n == max(bench.args.sizes) and bench.args.steady_seconds > 0
                ours = measure_start(bench, "ours", n, names, steady=steady)
                bench.results["scale"].append({**ours, "repeat": repeat})
                upstream_ok, why = upstream_fits(bench, n, per_process)
                if upstream_ok:
                    up = measure_start(bench, "upstream", n, names)
                    bench.results["scale"].append({**up, "repeat": repeat})
                    per_process = up["per_process"]
                elif repeat == 0:
                    log(f"N={n}: upstream not run ({why}); extrapolated from the measured sizes")
                    bench.results["scale"].append({"impl": "upstream", "n": n, "skipped": why})
            finally:
                bench.stop_cluster()


def upstream_fits(bench: Bench, n: int, per_process: dict[str, float] | None) -> tuple[bool, str]:
    if n <= bench.args.upstream_max:
        return True, ""
    available = mem_available()
    if per_process is None:
        return (
            False,
            f"N > --upstream-max {bench.args.upstream_max} and nothing measured to size it",
        )
    # PSS, not RSS: a forked watcher shares most of its pages with its parent, and RSS counts them
    # once per process.
    need = n * per_process["pss"]
    if need > 0.5 * available:
        return False, (
            f"{n} watcher processes x {per_process['pss'] / MIB:.0f} MiB PSS = "
            f"{need / 2**30:.1f} GiB > half of the {available / 2**30:.1f} GiB available"
        )
    return True, ""


def measure_start(bench: Bench, impl: str, n: int, names: list[str], steady: bool = False) -> dict[str, Any]:
    expect = [bench.home, *names]
    if impl == "ours":
        env = bench.executor_env("ours")
    else:
        env = bench.executor_env("upstream")
        env["AIRFLOW__KUBERNETES_EXECUTOR__MULTI_NAMESPACE_MODE"] = "True"
        env["AIRFLOW__KUBERNETES_EXECUTOR__MULTI_NAMESPACE_MODE_NAMESPACE_LIST"] = ",".join(expect)
    phase(f"scale N={n} {impl}")
    load = load_mark()
    child = bench.spawn(f"scale-{impl}-{n}", impl, env)
    idle = process_tree(child.pid)
    m0 = bench.metrics.scrape()
    baseline_watches = m0["longrunning"]["WATCH pods namespace"]
    result: dict[str, Any] = {"impl": impl, "n": n}
    # /metrics is large (every metric of the API server): it is not polled while start() runs, so as
    # not to steal CPU from it.
    cpu0 = tree_cpu(bench, child)["scheduler"]
    start = child.call("start", timeout=600, expect=expect)
    t_open = None
    while time.monotonic() - start["t_returned"] < 300:
        if bench.metrics.open_pod_watches() - baseline_watches >= len(expect):
            t_open = time.monotonic()
            break
        time.sleep(0.2)
    cpu1 = tree_cpu(bench, child)["scheduler"]
    time.sleep(2.0)  # let the last watchers settle before counting memory and requests
    m1 = bench.metrics.scrape()
    tree = process_tree(child.pid)
    status = child.call("status")
    t0 = start["t0"]
    result.update(
        start_returned_s=start["t_returned"] - t0,
        discovery_s=start.get("discovery_s"),
        all_live_s=(start["t_all_live"] - t0) if start["t_all_live"] else None,
        all_open_s=(t_open - t0) if t_open else None,
        watchers=start["live"],
        cpu_s=cpu1 - cpu0,
        requests=dict(request_delta(m0, m1)),
        open_watches=m1["longrunning"]["WATCH pods namespace"] - baseline_watches,
        tree=tree,
        idle_tree=idle,
        counters=status.get("counters", {}),
        other_load=other_load(load),
    )
    extra = max(tree["processes"] - idle["processes"], 1)
    result["per_process"] = {k: (tree[k] - idle[k]) / extra for k in ("rss", "pss", "uss", "threads")}
    log(
        f"N={n} {impl}: start() {result['start_returned_s']:.2f}s, all {len(expect)} watchers live "
        f"{fmt_s(result['all_live_s'])}, all watches open {fmt_s(result['all_open_s'])}; "
        f"{tree['processes']} processes, {tree['threads']} threads, RSS {tree['rss'] / MIB:.0f} MiB, "
        f"PSS {tree['pss'] / MIB:.0f} MiB; requests {sum(result['requests'].values())} "
        f"+ {result['open_watches']} watches; other load {result['other_load']['other']:.2f} CPUs "
        f"(max {result['other_load']['other_max']:.2f})"
    )
    if steady:
        bench.results["steady"] = measure_steady(bench, child, n, start)
    if loop_cost_wanted(bench, impl, n):
        measure_loop_cost(bench, child, impl, n, names)
    bench.close_child(child)
    return result


def tree_cpu(bench: Bench, child: Child) -> dict[str, float]:
    """CPU seconds so far of the executor's process tree, kube-apiserver and etcd."""
    out = {"scheduler": cpu_seconds(child.pid)}
    for name in ("apiserver", "etcd"):
        pid = getattr(bench.cluster, f"{name}_pid", None)
        if pid:
            out[name] = cpu_seconds(pid, tree=False)
    return out


def measure_steady(bench: Bench, child: Child, n: int, start: dict[str, Any]) -> dict[str, Any]:
    seconds, bucket = bench.args.steady_seconds, 10
    phase(f"steady state N={n}")
    t_start = start["t0"]
    log(
        f"N={n}: steady-state API load for {seconds}s in {bucket}s buckets "
        "(access_recheck_interval=60, recheck_jitter=0.1)"
    )
    rows = []
    previous, cpu_prev = bench.metrics.scrape(), tree_cpu(bench, child)
    first = previous["t"]
    next_at = first + bucket
    while next_at <= first + seconds + 0.01:
        time.sleep(max(0.0, next_at - time.monotonic()))
        current, cpu_now = bench.metrics.scrape(), tree_cpu(bench, child)
        delta = request_delta(previous, current)
        span = current["t"] - previous["t"]
        cpu = {k: (cpu_now[k] - cpu_prev[k]) / span * 100 for k in cpu_now}
        rows.append(
            {
                "from_s": previous["t"] - t_start,
                "to_s": current["t"] - t_start,
                "requests": dict(delta),
                "cpu_pct": cpu,
            }
        )
        log(
            f"  {previous['t'] - t_start:6.1f}-{current['t'] - t_start:6.1f}s after start(): "
            + (", ".join(f"{k} {v}" for k, v in sorted(delta.items())) or "no requests")
            + "; CPU % "
            + ", ".join(f"{k} {v:.0f}" for k, v in cpu.items())
        )
        previous, cpu_prev, next_at = current, cpu_now, next_at + bucket
    status = child.call("status")
    return {
        "n": n,
        "bucket_s": bucket,
        "rows": rows,
        "counters": status.get("counters", {}),
        "watchers": status["watchers"],
        "tree": process_tree(child.pid),
        "window_s": (first - t_start, previous["t"] - t_start),
        "watch_opens": watch_opens(child.log_path, start["wall0"]),
    }
