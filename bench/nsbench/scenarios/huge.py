"""One start-up of ours at a size beyond the scale runs (``--huge``, default 5000), not repeated.

Upstream is not run there: its measured PSS per watcher process, from the largest upstream run of
this bench, says why. The namespaces (+ RoleBindings) are created like the scale runs', in
parallel, and how long that took is recorded.
"""

from __future__ import annotations

import time
from typing import Any

from ..common import MIB, SELECTOR_KEY, log
from ..context import Bench
from ..probes import mem_available
from .scale import measure_start


def run_huge(bench: Bench) -> None:
    n = bench.args.huge
    bench.start_cluster()
    try:
        names = [f"h{n}-{i:05d}" for i in range(n)]
        started = time.monotonic()
        bench.create_namespaces(names, {SELECTOR_KEY: "true"}, grant=True)
        create_s = time.monotonic() - started
        log(f"N={n} (once): created {n} labelled namespaces with RoleBindings in {create_s:.1f}s")
        ours = measure_start(bench, "ours", n, names)
        bench.results["scale"].append({**ours, "repeat": 0, "once": True})
        why = upstream_why(bench, n)
        log(f"N={n}: upstream not run ({why})")
        bench.results["scale"].append({"impl": "upstream", "n": n, "skipped": why})
        bench.results["huge"] = {"n": n, "create_s": create_s}
    finally:
        bench.stop_cluster()


def upstream_why(bench: Bench, n: int) -> str:
    """Why upstream is not run at ``n``, from the PSS per watcher process of its largest measured run."""
    measured: list[dict[str, Any]] = [
        r for r in bench.results["scale"] if r["impl"] == "upstream" and "per_process" in r
    ]
    if not measured:
        return "not run at this size by design, and no upstream run in this bench to size it"
    largest = max(measured, key=lambda r: int(r["n"]))
    pss = float(largest["per_process"]["pss"])
    need, available = n * pss, mem_available()
    return (
        f"not run at this size by design: {n} watcher processes x {pss / MIB:.0f} MiB PSS (measured per "
        f"process at N={largest['n']}) = {need / 2**30:.1f} GiB, "
        + ("more than" if need > 0.5 * available else "within")
        + f" half of the {available / 2**30:.1f} GiB available"
    )
