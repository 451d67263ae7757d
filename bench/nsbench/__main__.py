"""``python -m bench.nsbench``: the command line, the order of the scenarios, the results file."""

# Imports inside functions are deliberate: a child (--child) must import Airflow only after its
# AIRFLOW__* environment is set, and the parent only after the bench's private AIRFLOW_HOME exists.
# ruff: noqa: PLC0415

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import time
from pathlib import Path
from typing import Any

from . import __doc__ as nsbench_doc
from .common import DOC, REPO, log
from .driver import child_main
from .probes import load_mark, mem_available, other_load, start_sampler


def machine_info(cluster_version: str) -> dict[str, str]:
    import airflow
    import kubernetes
    from airflow.providers.cncf.kubernetes import __version__ as cncf_version

    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor() or "unknown",
    )
    total = next(
        int(line.split()[1])
        for line in Path("/proc/meminfo").read_text().splitlines()
        if line.startswith("MemTotal:")
    )
    return {
        "nproc": subprocess.run(["nproc"], capture_output=True, text=True, check=False).stdout.strip(),
        "cpu": cpu,
        "ram": f"{total / 2**20:.1f} GiB",
        "kernel": platform.release(),
        "python": platform.python_version(),
        "kube-apiserver": cluster_version,
        "apache-airflow": airflow.__version__,
        "cncf-kubernetes provider": cncf_version,
        "kubernetes client": kubernetes.__version__,
    }


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=nsbench_doc, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument(
        "--quick",
        action="store_true",
        help="few trials, N=10,100, 30s steady state; no report",
    )
    parser.add_argument(
        "--repeats",
        type=int,
        default=3,
        help="runs of each scenario (fresh control plane each): median and spread across them",
    )
    parser.add_argument("--trials", type=int, default=100, help="trials per latency path (>= 50)")
    parser.add_argument(
        "--sizes",
        type=lambda s: [int(x) for x in s.split(",")],
        default=[10, 100, 500, 1000],
    )
    parser.add_argument(
        "--upstream-max",
        type=int,
        default=100,
        help="largest N the upstream executor is run at unconditionally; larger N only if "
        "N x measured per-process PSS fits in half the available memory",
    )
    parser.add_argument(
        "--recheck-interval",
        type=float,
        default=2.0,
        help="for the RoleBinding-removed path",
    )
    parser.add_argument("--revoke-spacing", type=float, default=0.25)
    parser.add_argument(
        "--drain-cadence",
        type=float,
        default=1.0,
        help="seconds between the executor's sync() calls in the drain scenario (an idle "
        "scheduler's loop: [scheduler] scheduler_idle_sleep_time, default 1)",
    )
    parser.add_argument(
        "--loop-tasks",
        type=int,
        default=200,
        help="tasks per executor (and per mode) in the scheduler-loop cost, once per N; 0 skips it",
    )
    parser.add_argument(
        "--huge",
        type=int,
        default=5000,
        help="one start-up of ours at this N after the scale runs (not repeated, upstream not run); "
        "0 skips it",
    )
    parser.add_argument("--drain-trials", type=int, default=50, help="trials of the drain scenario")
    parser.add_argument(
        "--burst", type=int, default=200, help="namespaces labelled at once (each watch open timed)"
    )
    parser.add_argument("--steady-seconds", type=int, default=720, help="idle window, ours and upstream each")
    parser.add_argument("--steady-bucket", type=int, default=60, help="seconds per row of the steady window")
    parser.add_argument("--check-iterations", type=int, default=200_000)
    parser.add_argument("--miss-iterations", type=int, default=300)
    parser.add_argument("--skip-latency", action="store_true")
    parser.add_argument("--skip-scale", action="store_true")
    parser.add_argument("--skip-floor", action="store_true", help="no bare-client floor rows")
    parser.add_argument("--output", type=Path, default=DOC)
    parser.add_argument("--json", type=Path, help="also write the raw results here")
    parser.add_argument("--keep", action="store_true", help="keep the children's logs")
    parser.add_argument(
        "--render",
        type=Path,
        help="only re-render --output from a --json file of an earlier run",
    )
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    if args.child:
        child_main(args.child)
        return
    # Everything below is the parent: the harness (which sets AIRFLOW_HOME) and the scenarios are
    # imported only here, never in a child.
    from .report.page import render
    from .report.summary import summary_table

    if args.render:
        saved = json.loads(args.render.read_text())
        print(summary_table(saved))
        args.output.write_text(render(saved))
        return
    if args.quick:
        args.trials, args.sizes, args.steady_seconds, args.steady_bucket = 10, [10, 100], 30, 10
        args.check_iterations, args.miss_iterations, args.burst = 20_000, 50, 50
        args.drain_trials, args.loop_tasks, args.repeats = 10, 20, 1
        args.huge = min(args.huge, 300)
    results = run(args)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, default=str))
    print()
    print(summary_table(results))
    log(f"bench finished in {results['wall_s']:.0f}s")
    if not args.quick:
        args.output.write_text(render(results))
        log(f"wrote {args.output.relative_to(REPO) if args.output.is_relative_to(REPO) else args.output}")


def run(args: argparse.Namespace) -> dict[str, Any]:
    from .context import Bench
    from .harness import apiserver_version, prepare_airflow_home
    from .scenarios.floor import run_floor
    from .scenarios.huge import run_huge
    from .scenarios.latency import run_latency
    from .scenarios.scale import run_scale

    t_bench = time.monotonic()
    sampler = start_sampler()
    load_before = os.getloadavg()
    log(
        f"bench: trials={args.trials} sizes={args.sizes} steady={args.steady_seconds}s "
        f"repeats={args.repeats}; {os.cpu_count()} CPUs, {mem_available() / 2**30:.1f} GiB available"
    )
    prepare_airflow_home()
    bench = Bench(args)
    try:
        for repeat in range(args.repeats if not args.skip_latency else 0):
            log(f"latency run {repeat + 1}/{args.repeats}")
            bench.run = {"latency": {}, "validation": {}, "floor": {}}
            mark = load_mark()
            bench.start_cluster()
            try:
                if not args.skip_floor:
                    run_floor(bench)
                run_latency(bench)
            finally:
                bench.stop_cluster()
            bench.run["load"] = other_load(mark)
            bench.results["latency_runs"].append(bench.run)
        if not args.skip_scale:
            run_scale(bench)
            if args.huge:
                run_huge(bench)
    finally:
        bench.cleanup()
    wall = time.monotonic() - t_bench
    info = machine_info(apiserver_version())
    info["load average (1/5/15 min) before / after"] = (
        f"{' '.join(f'{x:.2f}' for x in load_before)} / {' '.join(f'{x:.2f}' for x in os.getloadavg())}"
    )
    bench.results["cpu_phases"] = sampler.stop()
    return {
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "wall_s": wall,
        "finished": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": info,
        **bench.results,
    }


if __name__ == "__main__":
    main()
