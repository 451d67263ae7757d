"""`make demo`: DynamicNamespaceKubernetesExecutor end to end, on this machine, in about a minute.

Starts a real kube-apiserver + etcd, an Airflow 3 scheduler, api-server and dag-processor with
this executor, and a stand-in kubelet that runs task pods as local processes. Then it runs
example_dags/namespaces_demo.py: a task in the home namespace and in team-a succeed; team-b
(labelled, no RBAC) and team-c (RBAC, no label) are refused at once without a pod. Finally it
labels team-c while the scheduler keeps running, re-runs that task, and it succeeds.

Run it with `make demo`, or from the repository root with a Python that has the provider and the
harness (harness/) installed:
    python -m demo.run_demo [--workdir DIR]
Logs stay in the work directory, printed at the end.
"""

from __future__ import annotations

import argparse
import dataclasses
import signal
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from types import FrameType

from kubeharness import ENABLE_HINT, resolve
from tests.harness.namespaces_scenario import NamespacesScenario, Outcome

EXPECTED = {"home": "success", "team_a": "success", "team_b": "failed", "team_c": "failed"}


class Narrator:
    def __init__(self) -> None:
        self.started = time.monotonic()

    def __call__(self, message: str) -> None:
        print(f"[{time.monotonic() - self.started:6.1f}s] {message}", flush=True)


def split_fix(reason: str) -> tuple[str, str]:
    """A refusal reads "<what is wrong> (<command that fixes it>)"; show the command on its own line."""
    head, sep, fix = reason.rpartition(" (")
    if sep and reason.endswith(")") and head.startswith("namespace '"):
        return head, fix[:-1]
    return reason, ""


def table(outcomes: list[Outcome], width: int = 110) -> str:
    """Reasons are wrapped at spaces only; fixes are never wrapped, so they can be copied."""
    header = ("task", "namespace", "outcome")
    cells = [(o.task_id, o.namespace, f"{o.state} (try {o.try_number})") for o in outcomes]
    widths = [max(len(row[i]) for row in [header, *cells]) for i in range(3)]
    indent = " " * (sum(widths) + 6)

    def head(row: tuple[str, str, str]) -> str:
        return "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row))

    lines = [f"{head(header)}  reason", "-" * width]
    for row, outcome in zip(cells, outcomes, strict=True):
        reason, fix = split_fix(outcome.reason)
        wrapped = textwrap.wrap(
            reason, max(40, width - len(indent)), break_on_hyphens=False, break_long_words=False
        ) or [""]
        lines.append(f"{head(row)}  {wrapped[0]}")
        lines.extend(indent + more for more in wrapped[1:])
        if fix:
            lines.append(f"{indent}fix: {fix}")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--workdir", type=Path, help="where to keep AIRFLOW_HOME and logs (default: a new temp dir)"
    )
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="nsd-demo-"))
    workdir.mkdir(parents=True, exist_ok=True)

    cluster = resolve()
    if cluster is None:
        print(f"cannot run the demo: {ENABLE_HINT}", file=sys.stderr)
        return 2

    def on_sigterm(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt  # unwinds through the scenario's cleanup like Ctrl-C

    signal.signal(signal.SIGTERM, on_sigterm)
    say = Narrator()
    failed = interrupted = False
    with NamespacesScenario(cluster, workdir, progress=say) as scenario:
        try:
            scenario.start()
            first = scenario.run_dag()
            for outcome in first.values():
                if outcome.state != "success":
                    say(f"  {outcome.task_id} refused: {outcome.reason}")
            unexpected = {t: o.state for t, o in first.items() if o.state != EXPECTED[t]}
            if unexpected:
                say(f"UNEXPECTED: {unexpected}")
                failed = True
            report = scenario.namespaces_report()
            if report:
                say("what the scheduler's identity may use (airflow kubernetes-namespaces list):")
                print(report, flush=True)
            rerun = scenario.label_team_c_and_rerun()
            if rerun.state != "success":
                say(f"UNEXPECTED: team_c after labelling: {rerun.state} {rerun.reason}")
                failed = True
            print()
            relabelled = dataclasses.replace(
                rerun, reason=f"after `kubectl label`, no restart: {rerun.reason}"
            )
            print(table([*first.values(), relabelled]))
            print()
            print("Logs:")
            for what, where in scenario.log_locations().items():
                print(f"  {what:<22} {where}")
        except KeyboardInterrupt:
            say("interrupted: stopping everything")
            interrupted = True
        except Exception as err:
            say(f"FAILED: {err}")
            failed = True
            print(f"logs are in {workdir}", file=sys.stderr)
        say("stopping Airflow, the kubelet stand-in and the control plane")
    if interrupted:
        say("interrupted")
        return 130
    say("done, with failures" if failed else "done")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
