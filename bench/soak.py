#!/usr/bin/env python
"""`make soak`: the churn soak, long. A real Airflow scheduler with DynamicNamespaceKubernetesExecutor
runs a DAG again and again for SOAK_SECONDS (default 480) while team namespaces are unlabelled and
relabelled, their RoleBindings removed and restored, namespaces deleted and recreated and the API
server restarted; then everything is restored and measured (see tests/harness/churn_soak.py).

Run it from the repository root with the project's virtualenv::

    python -m bench.soak [--seconds N] [--seed S] [--workdir DIR]

It prints the measured numbers and every broken promise, writes them to <workdir>/result.json,
keeps the logs in <workdir>, and exits 1 if a promise was broken. The short version of the same
soak is tests/e2e/test_churn_soak.py.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import tempfile
import time
from pathlib import Path
from types import FrameType

from kubeharness import ENABLE_HINT, resolve
from tests.harness.churn_soak import ChurnSoak, reported
from tests.harness.soak_result import default_bounds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=float(os.environ.get("SOAK_SECONDS", "480")))
    parser.add_argument("--seed", type=int, default=int(os.environ.get("SOAK_SEED", "1127")))
    parser.add_argument("--workdir", type=Path, help="AIRFLOW_HOME and logs go here (default: a temp dir)")
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="nsd-soak-"))
    workdir.mkdir(parents=True, exist_ok=True)
    cluster = resolve()
    if cluster is None:
        print(f"cannot run the soak: {ENABLE_HINT}", file=sys.stderr)
        return 2

    def on_sigterm(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt  # unwinds through the soak's cleanup like Ctrl-C

    signal.signal(signal.SIGTERM, on_sigterm)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s: %(message)s")
    for expected in ("tests.harness.kubelet", "urllib3"):  # watches reconnecting across restarts
        logging.getLogger(expected).setLevel(logging.ERROR)
    started = time.monotonic()

    def say(message: str) -> None:
        print(f"[{time.monotonic() - started:6.1f}s] {message}", flush=True)

    with ChurnSoak(cluster, workdir, seed=args.seed, progress=say) as soak, reported(soak):
        soak.start()
        result = soak.run(args.seconds)
    (workdir / "result.json").write_text(result.to_json())
    print(result.summary())
    broken = result.violations(default_bounds(result.heartbeat_interval))
    for promise, what in broken.items():
        print(f"BROKEN {promise}: {what}")
    print(f"result: {workdir / 'result.json'}; {'FAILED' if broken else 'every promise kept'}")
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
