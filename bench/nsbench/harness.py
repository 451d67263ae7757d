"""The one module of the bench that imports the test harness (tests/harness, tests/airflow_env).

The bench runs its executors against the same local control plane and the same private Airflow home
as the integration tests; everything it needs from them goes through here, so a move of the harness
is fixed in one place.
"""

from __future__ import annotations

import subprocess
import time
from typing import Any

from kubeharness import NAMESPACE_READ_RULES, Cluster, find_binaries, resolve
from tests.harness.apiserver_metrics import SCHEDULER_RESOURCES, ApiMetrics, request_delta
from tests.harness.executor_pods import POD_RULES

from .common import log

__all__ = ["SCHEDULER_RESOURCES", "ApiMetrics", "request_delta"]


def resolve_cluster() -> Cluster | None:
    """The harness's control plane (not started), or None when its binaries are not built."""
    return resolve()


def scheduler_rules() -> tuple[Any, Any]:
    """(cluster-wide rules, home-namespace rules) of the scheduler identity the integration tests use."""
    return NAMESPACE_READ_RULES, POD_RULES


def apiserver_version() -> str:
    binaries = find_binaries()
    if binaries is None:
        return "unknown"
    out = []
    for name, flag in (("kube-apiserver", "--version"), ("etcd", "--version")):
        text = subprocess.run(
            [str(binaries / name), flag], capture_output=True, text=True, check=False
        ).stdout
        out.append(text.strip().splitlines()[0] if text.strip() else name)
    return "; ".join(out)


def prepare_airflow_home() -> None:
    """A private Airflow home with a migrated database, as the integration tests use.

    Imported here, not above: tests.airflow_env sets AIRFLOW_HOME when imported, which must happen
    before Airflow is first imported, and only in the parent."""
    from tests import airflow_env  # noqa: PLC0415  # sets AIRFLOW_HOME etc. in os.environ; children inherit them

    started = time.monotonic()
    airflow_env.migrate_database()
    log(f"Airflow metadata database migrated in {time.monotonic() - started:.1f}s ({airflow_env.HOME})")
