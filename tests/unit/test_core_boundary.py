"""The core knows Kubernetes but not Airflow: every core module imports with Airflow unavailable.

The boundary is what lets the controller be tested, reasoned about and reused without a
scheduler; it holds because this test fails the moment a core module imports Airflow.
"""

from __future__ import annotations

import pkgutil
import subprocess
import sys
from pathlib import Path

import airflow_provider_nsdiscovery

ADAPTER = ("executors", "cli", "policy", "get_provider_info")
"""The thin Airflow adapter: the only modules allowed to import Airflow."""

PACKAGE = Path(airflow_provider_nsdiscovery.__file__).parent


def _core_modules() -> list[str]:
    names = []
    for info in pkgutil.walk_packages([str(PACKAGE)], prefix="airflow_provider_nsdiscovery."):
        relative = info.name.removeprefix("airflow_provider_nsdiscovery.")
        if relative.split(".")[0] not in ADAPTER:
            names.append(info.name)
    return sorted(names)


_IMPORT_WITHOUT_AIRFLOW = """
import importlib, sys

class NoAirflow:
    def find_spec(self, name, path=None, target=None):
        if name == "airflow" or name.startswith("airflow."):
            raise ImportError(f"the core imported {name}")
        return None

sys.meta_path.insert(0, NoAirflow())
for name in sys.argv[1:]:
    importlib.import_module(name)
"""


def test_every_core_module_imports_without_airflow() -> None:
    modules = _core_modules()
    assert "airflow_provider_nsdiscovery.discovery.controller" in modules
    result = subprocess.run(
        [sys.executable, "-c", _IMPORT_WITHOUT_AIRFLOW, *modules],
        capture_output=True,
        text=True,
        check=False,
        cwd=PACKAGE.parent,
    )
    assert result.returncode == 0, result.stderr


def test_the_adapter_list_names_modules_that_exist() -> None:
    """A renamed adapter module must not silently widen what counts as core."""
    present = {info.name for info in pkgutil.iter_modules([str(PACKAGE)])}
    assert set(ADAPTER) <= present
