"""The package as users get it: a built wheel (not the source tree), seen by the `airflow` CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from email.message import Message
from email.parser import Parser
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

from airflow_provider_nsdiscovery.config import SECTION
from airflow_provider_nsdiscovery.get_provider_info import EXECUTOR, PACKAGE, get_provider_info

REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Installed:
    wheel: Path
    site: Path

    def run(self, *args: str) -> str:
        # The wheel's directory first on the path, and a cwd outside the checkout, so neither the
        # source tree nor an editable install can stand in for what the wheel installed.
        env = {**os.environ, "PYTHONPATH": str(self.site)}
        return subprocess.run(
            [sys.executable, *args], env=env, cwd=self.site, capture_output=True, text=True, check=True
        ).stdout

    def dist_info(self, name: str) -> bytes:
        with zipfile.ZipFile(self.wheel) as wheel:
            (path,) = [
                n for n in wheel.namelist() if n.split("/")[0].endswith(".dist-info") and n.endswith(name)
            ]
            return wheel.read(path)

    def metadata(self) -> Message:
        return Parser().parsestr(self.dist_info("/METADATA").decode())


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    dist = tmp_path_factory.mktemp("dist")
    site = tmp_path_factory.mktemp("site")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--wheel-dir", str(dist), str(REPO)],
        check=True,
    )
    (wheel,) = dist.glob("*.whl")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site), str(wheel)],
        check=True,
    )
    return Installed(wheel, site)


# the wheel's metadata --------------------------------------------------------------------------


def test_the_wheel_carries_the_apache_license(installed: Installed) -> None:
    assert installed.metadata()["License-Expression"] == "Apache-2.0"
    assert installed.dist_info("/licenses/LICENSE") == (REPO / "LICENSE").read_bytes()


def test_the_wheel_holds_the_provider_and_none_of_the_test_harness(installed: Installed) -> None:
    """harness/ (kubeharness) and the tests sit beside the package in the checkout; users get
    neither."""
    with zipfile.ZipFile(installed.wheel) as wheel:
        top_level = {name.split("/")[0] for name in wheel.namelist()}
    assert {name for name in top_level if not name.endswith(".dist-info")} == {"airflow_provider_nsdiscovery"}


def test_the_wheel_is_classified_as_an_airflow_provider(installed: Installed) -> None:
    """PyPI and Airflow's provider listings search by this classifier."""
    assert "Framework :: Apache Airflow :: Provider" in installed.metadata().get_all("Classifier", [])


def test_python_floor_is_the_highest_one_among_the_dependencies(installed: Installed) -> None:
    """A lower floor lets pip start on an interpreter it then finds no dependencies for; a higher
    one shuts out interpreters that would work. Compared with the installed dependencies."""
    ours = SpecifierSet(installed.metadata()["Requires-Python"])
    (floor,) = (spec.version for spec in ours if spec.operator == ">=")
    major, minor = map(int, floor.split("."))
    dependencies = [
        Requirement(line)
        for line in installed.metadata().get_all("Requires-Dist", [])
        if "extra ==" not in line
    ]
    theirs = {
        dep.name: SpecifierSet((metadata.metadata(dep.name).get_all("Requires-Python") or [""])[0])
        for dep in dependencies
    }

    assert {name: f"{floor}.0" in spec for name, spec in theirs.items()} == dict.fromkeys(theirs, True)
    assert any(f"{major}.{minor - 1}.99" not in spec for spec in theirs.values())


def test_airflow_shows_the_documentation_url_of_the_project_urls(installed: Installed) -> None:
    urls = dict(entry.split(", ", 1) for entry in installed.metadata().get_all("Project-URL", []))
    assert set(urls) >= {"Documentation", "Source", "Changelog"}

    out = installed.run("-m", "airflow", "providers", "get", PACKAGE, "--full", "-o", "json")

    (info,) = json.loads(out)
    assert info["documentation-url"] == urls["Documentation"]


# the installed package -------------------------------------------------------------------------


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
