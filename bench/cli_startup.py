#!/usr/bin/env python
"""Wall time of `airflow kubernetes-namespaces list|check`, beside `airflow version` as the floor.

An operator runs these by hand and in scripts, so each call should answer in well under 2 s. Most
of a call is Python start-up and Airflow's own import and CLI parser set-up, which every `airflow`
command pays; `airflow version` measures that floor on the same machine in the same run, so the
provider's share is the difference.

The commands run as processes, configured by environment only (no scheduler, no database) against
the local control plane from tests/harness, as the scheduler ServiceAccount with pod rights in one
labelled team namespace.

    python -m bench.cli_startup [--runs 5] [--checkouts DIR ...]   # from the repository root

With several checkouts (e.g. before and after a change), each run times every checkout in turn,
so load from other processes on the machine falls on all of them alike.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

from airflow_provider_nsdiscovery.get_provider_info import EXECUTOR
from kubeharness import NAMESPACE_READ_RULES, require_cluster
from tests.harness.executor_pods import POD_RULES

REPO = Path(__file__).resolve().parents[1]

LABEL = "bench-cli-enabled"


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _timed(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall time and CPU time (user + system) of one call. On a shared machine the wall time
    also holds the waits for a core; the CPU time is what the call itself costs."""
    cpu, start = _children_cpu(), time.perf_counter()
    result = subprocess.run(argv, env=env, capture_output=True, text=True, check=False, timeout=120)
    elapsed, cpu = time.perf_counter() - start, _children_cpu() - cpu
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} exited {result.returncode}: {result.stderr[-2000:]}")
    return elapsed, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--checkouts", nargs="+", type=Path, default=[REPO], metavar="DIR")
    args = parser.parse_args()

    with require_cluster() as cluster:
        team = "bench-cli-team"
        cluster.create_namespace(team, labels={LABEL: "true"})
        scheduler = cluster.service_account_client(
            "bench-cli-home",
            "airflow-scheduler",
            cluster_rules=NAMESPACE_READ_RULES,
            namespace_rules={team: POD_RULES},
        )
        base_env = {
            **os.environ,
            "AIRFLOW__CORE__EXECUTOR": EXECUTOR,
            "AIRFLOW__KUBERNETES_EXECUTOR__IN_CLUSTER": "False",
            "AIRFLOW__KUBERNETES_EXECUTOR__CONFIG_FILE": str(scheduler.kubeconfig_path),
            "AIRFLOW__KUBERNETES_EXECUTOR__NAMESPACE": scheduler.namespace,
            "AIRFLOW__KUBERNETES_NAMESPACE_DISCOVERY__LABEL_SELECTOR": f"{LABEL}=true",
        }
        envs = {
            checkout: {
                **base_env,
                "PYTHONPATH": os.pathsep.join(filter(None, [str(checkout), os.environ.get("PYTHONPATH")])),
            }
            for checkout in args.checkouts
        }
        airflow = [sys.executable, "-m", "airflow"]
        commands = {
            "airflow version": [*airflow, "version"],
            "kubernetes-namespaces list": [*airflow, "kubernetes-namespaces", "list"],
            f"kubernetes-namespaces check {team}": [*airflow, "kubernetes-namespaces", "check", team],
            "kubernetes-namespaces list -o json": [*airflow, "kubernetes-namespaces", "list", "-o", "json"],
        }
        for env in envs.values():
            _timed(commands["airflow version"], env)  # warm the page cache and .pyc files once
        times: dict[tuple[str, Path], list[tuple[float, float]]] = {
            (c, k): [] for c in commands for k in envs
        }
        for _ in range(args.runs):
            for name, argv in commands.items():
                for checkout, env in envs.items():
                    times[name, checkout].append(_timed(argv, env))
        print(
            f"{'command':<42} {'checkout':<24} {'wall median':>11} {'min':>5} {'cpu median':>10} {'min':>5}"
        )
        for (name, checkout), measured in times.items():
            wall, cpu = [m[0] for m in measured], [m[1] for m in measured]
            print(
                f"{name:<42} {str(checkout)[-24:]:<24} {statistics.median(wall):11.2f} {min(wall):5.2f} "
                f"{statistics.median(cpu):10.2f} {min(cpu):5.2f}"
            )
        print(f"({args.runs} runs each, seconds)")


if __name__ == "__main__":
    main()
