"""The package as users get it: a built wheel (not the source tree), seen by the `airflow` CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from airflow_provider_nsdiscovery.config import SECTION
from airflow_provider_nsdiscovery.get_provider_info import EXECUTOR, get_provider_info

REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Installed:
    site: Path

    def run(self, *args: str) -> str:
        # The wheel's directory first on the path, and a cwd outside the checkout, so neither the
        # source tree nor an editable install can stand in for what `pip install .` produced.
        env = {**os.environ, "PYTHONPATH": str(self.site)}
        return subprocess.run(
            [sys.executable, *args], env=env, cwd=self.site, capture_output=True, text=True, check=True
        ).stdout


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    site = tmp_path_factory.mktemp("site")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site), str(REPO)],
        check=True,
    )
    return Installed(site)


def test_the_installed_executor_imports_from_the_wheel(installed: Installed) -> None:
    module, _, name = EXECUTOR.rpartition(".")
    out = installed.run("-c", f"import {module} as m; print(m.{name}.__name__, m.__file__)")
    executor, path = out.split()
    assert executor == name
    assert path.startswith(str(installed.site))


def test_airflow_lists_the_provider(installed: Installed) -> None:
    out = installed.run("-m", "airflow", "providers", "list", "-o", "json")
    providers = {p["package_name"]: p for p in json.loads(out)}
    assert providers["airflow-provider-nsdiscovery"]["version"] == get_provider_info()["versions"][0]


def test_airflow_config_knows_every_option_and_its_default(installed: Installed) -> None:
    options = get_provider_info()["config"][SECTION]["options"]

    listed = installed.run("-m", "airflow", "config", "list", "--section", SECTION)
    values = json.loads(
        installed.run(
            "-c",
            "import json, sys; from airflow.configuration import conf; "
            f"print(json.dumps({{k: conf.get({SECTION!r}, k) for k in sys.argv[1:]}}))",
            *options,
        )
    )

    # `config list` names every option (Airflow 3.3 prints provider defaults blank there, for
    # cncf-kubernetes too); the configuration itself resolves each to its declared default.
    assert all(f"{name} =" in listed for name in options)
    assert values == {name: option["default"] for name, option in options.items()}
