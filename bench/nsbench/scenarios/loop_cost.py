"""The scheduler loop's cost per task with every watcher alive: ours with and without the check, upstream.

Measured once per (executor, N) in the scale scenario, after start-up, in the executor child the
scale row was measured in (driver.py ``op_loop_cost``): per task ``execute_async`` with a
pod_override naming one of the permitted namespaces (taken in turn), then the ``sync()`` that
creates its pod, a real API request. Upstream's child is the plain KubernetesExecutor in
multi_namespace_mode with the same namespaces listed.
"""

from __future__ import annotations

from typing import Any

from ..common import fmt_p, log
from ..context import Bench
from ..driver import Child
from ..probes import load_mark, other_load, phase


def loop_cost_wanted(bench: Bench, impl: str, n: int) -> bool:
    """Once per executor and N, and not at all with --loop-tasks 0."""
    done = bench.results.setdefault("loop_cost", [])
    return bench.args.loop_tasks > 0 and not any(r["impl"] == impl and r["n"] == n for r in done)


def measure_loop_cost(bench: Bench, child: Child, impl: str, n: int, names: list[str]) -> None:
    phase(f"loop cost N={n} {impl}")
    load = load_mark()
    answer = child.call("loop_cost", timeout=900, namespaces=names, tasks=bench.args.loop_tasks)
    record: dict[str, Any] = {**answer, "impl": impl, "n": n, "other_load": other_load(load)}
    bench.results["loop_cost"].append(record)
    log(
        f"N={n} {impl}: per task execute_async + sync() "
        + "; ".join(
            f"{mode}: p50 {fmt_p(m['total_ms'], 50)} p99 {fmt_p(m['total_ms'], 99)} ms"
            + (f" (check p50 {fmt_p(m['check_ms'], 50)} ms)" if m["check_ms"] else "")
            for mode, m in answer["modes"].items()
        )
        + f"; {answer['failed']} tasks failed, {answer['watchers']} watchers"
    )
