"""Start-up at N permitted namespaces, ours vs upstream; the steady state (scenarios/steady.py) follows
in the largest N's first control plane."""

# The kubernetes client and psutil are imported where used, like everywhere in the bench.

from __future__ import annotations

import math
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
)
from .loop_cost import loop_cost_wanted, measure_loop_cost


def run_scale(bench: Bench) -> None:
    """Per N and repetition a fresh control plane: N labelled namespaces, then ours, then upstream."""
    per_process: dict[str, float] | None = None
    fitted: tuple[int, int, str] | None = None  # (N, upstream's N, why), sized once per N
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
                ours = measure_start(bench, "ours", n, names)
                bench.results["scale"].append({**ours, "repeat": repeat})
                if fitted is None or fitted[0] != n:
                    fitted = (n, *upstream_size(bench, n, per_process))
                _, n_up, why = fitted
                if n_up == n:
                    up = measure_start(bench, "upstream", n, names)
                    bench.results["scale"].append({**up, "repeat": repeat})
                    per_process = up["per_process"]
                else:
                    if repeat == 0:
                        log(f"N={n}: upstream does not fit ({why}); run at N={n_up} instead")
                        bench.results["scale"].append({"impl": "upstream", "n": n, "skipped": why})
                    if n_up:
                        # The largest N that fits, measured, so that the extrapolation to N stands
                        # beside a measured value instead of replacing one.
                        up = measure_start(bench, "upstream", n_up, names[:n_up])
                        bench.results["scale"].append({**up, "repeat": repeat, "largest_fit_for": n})
                if repeat == 0 and n == max(bench.args.sizes) and bench.args.steady_seconds > 0:
                    from .steady import run_steady  # noqa: PLC0415 - steady.py imports this module

                    run_steady(bench, n, names, per_process)
            finally:
                bench.stop_cluster()


def upstream_size(bench: Bench, n: int, per_process: dict[str, float] | None) -> tuple[int, str]:
    """N if N upstream watcher processes fit in half the available memory, else the largest N that
    does (0 if nothing measured sizes it), and why."""
    if n <= bench.args.upstream_max:
        return n, f"N <= --upstream-max {bench.args.upstream_max}"
    if per_process is None:
        return 0, f"N > --upstream-max {bench.args.upstream_max} and nothing measured to size it"
    # PSS, not RSS: a forked watcher shares most of its pages with its parent, and RSS counts them
    # once per process.
    available = mem_available()
    fits = math.floor(0.5 * available / per_process["pss"])
    if fits >= n:
        return n, f"{n} watcher processes fit in half of the {available / 2**30:.1f} GiB available"
    return fits, (
        f"{n} watcher processes x {per_process['pss'] / MIB:.1f} MiB PSS = "
        f"{n * per_process['pss'] / 2**30:.1f} GiB > half of the {available / 2**30:.1f} GiB available, "
        f"which holds {fits}"
    )


def upstream_env(bench: Bench, namespaces: list[str]) -> dict[str, str]:
    """Upstream's KubernetesExecutor watching ``namespaces``, one watcher process each."""
    env = bench.executor_env("upstream")
    env["AIRFLOW__KUBERNETES_EXECUTOR__MULTI_NAMESPACE_MODE"] = "True"
    env["AIRFLOW__KUBERNETES_EXECUTOR__MULTI_NAMESPACE_MODE_NAMESPACE_LIST"] = ",".join(namespaces)
    return env


def measure_start(bench: Bench, impl: str, n: int, names: list[str]) -> dict[str, Any]:
    expect = [bench.home, *names]
    env = bench.executor_env("ours") if impl == "ours" else upstream_env(bench, expect)
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
