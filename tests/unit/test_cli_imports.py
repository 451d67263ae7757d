"""What an `airflow kubernetes-namespaces` call imports beyond Airflow's own start-up.

Each call should answer in well under 2 s (bench/cli_startup.py), and Airflow's own start-up
already takes most of that, so the commands must not drag in the executor and the
KubernetesExecutor behind it, which they never use.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).parents[2]


def test_cli_commands_do_not_import_the_executor() -> None:
    probe = (
        "import sys, airflow_provider_nsdiscovery.cli.commands\n"
        "print(sorted(m for m in sys.modules if m.startswith('airflow_provider_nsdiscovery.executors')))"
    )
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
    }
    result = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True, timeout=120
    )

    loaded = result.stdout.strip().splitlines()[-1]
    assert "dynamic_namespace_kubernetes_executor" not in loaded, loaded
    assert "airflow_provider_nsdiscovery.executors.settings" in loaded  # the probe did import the CLI


def test_executor_is_still_importable_by_the_path_core_executor_names() -> None:
    from airflow_provider_nsdiscovery import executors  # noqa: PLC0415
    from airflow_provider_nsdiscovery.get_provider_info import EXECUTOR  # noqa: PLC0415

    module, _, name = EXECUTOR.rpartition(".")
    assert module == executors.__name__
    assert getattr(executors, name).__name__ == name
