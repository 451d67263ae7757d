"""The one module of the bench that imports the test harness (tests/harness, tests/airflow_env).

The bench runs its executors against the same local control plane and the same private Airflow home
as the integration tests; everything it needs from them goes through here, so a move of the harness
is fixed in one place.
"""

# Imports inside functions are deliberate: tests.airflow_env sets AIRFLOW_HOME when imported, which
# must happen before Airflow is first imported, and only in the parent.
# ruff: noqa: PLC0415

from __future__ import annotations

import subprocess
import sys
import time
from typing import Any

from .common import REPO, log

# `python -m bench.nsbench` from the repository root has it on sys.path already; this covers other
# working directories.
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def resolve_cluster() -> Any:
    """The harness's control plane (not started), or None when its binaries are not built."""
    from tests.harness.controlplane import resolve

    return resolve()


def scheduler_rules() -> tuple[Any, Any]:
    """(cluster-wide rules, home-namespace rules) of the scheduler identity the integration tests use."""
    from tests.harness.controlplane import NAMESPACE_READ_RULES, POD_RULES

    return NAMESPACE_READ_RULES, POD_RULES


def bearer_token_for_every_client_release() -> None:
    """Make the harness's clients authenticate with kubernetes client 35 and 36 alike.

    Client 36 looks the bearer token up under ``BearerToken`` (falling back to ``authorization``
    for the token but not for its "Bearer" prefix); older releases use ``authorization``. Setting
    both keys works with either, whatever the harness in this checkout sets.
    """
    from tests.harness import controlplane

    original = controlplane.Cluster._configuration
    if getattr(original, "_nsd_bench", False):
        return

    def configuration(self: Any, token: str) -> Any:
        result = original(self, token)
        result.api_key = {"authorization": token, "BearerToken": token}
        result.api_key_prefix = {"authorization": "Bearer", "BearerToken": "Bearer"}
        return result

    configuration._nsd_bench = True  # type: ignore[attr-defined]
    controlplane.Cluster._configuration = configuration  # type: ignore[method-assign]


def apiserver_version() -> str:
    from tests.harness.controlplane import find_binaries

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
    """A private Airflow home with a migrated database, as the integration tests use."""
    from tests import airflow_env  # sets AIRFLOW_HOME etc. in os.environ; children inherit them

    started = time.monotonic()
    airflow_env.migrate_database()
    log(f"Airflow metadata database migrated in {time.monotonic() - started:.1f}s ({airflow_env.HOME})")
