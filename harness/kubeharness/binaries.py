"""Where the control plane's binaries come from: KUBEBUILDER_ASSETS, or build-controlplane.sh.

There is no Docker engine and no download site on the machines this runs on, only the Go module
proxy, so the script beside this file compiles kube-apiserver, kube-controller-manager and etcd
from pinned releases once and answers from its cache after that.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from kubeharness import controller_manager

BUILD_SCRIPT = Path(__file__).with_name("build-controlplane.sh")

ENABLE_HINT = (
    "no Kubernetes control plane for integration tests: install Go >= 1.25 "
    "(harness/kubeharness/build-controlplane.sh then builds the control plane once) or set "
    "KUBEBUILDER_ASSETS to a directory holding kube-apiserver, kube-controller-manager and etcd"
)


def find_binaries() -> Path | None:
    """Return a directory holding the control plane's binaries, building them if need be.

    KUBEBUILDER_ASSETS wins so developers can reuse binaries from setup-envtest; when it is set
    but incomplete that is a mistake worth an error rather than a silent fallback. Otherwise the
    build script is run: it answers at once from its cache, even on a machine without Go.
    """
    assets = os.environ.get("KUBEBUILDER_ASSETS")
    if assets:
        directory = Path(assets)
        wanted = ("kube-apiserver", "etcd", controller_manager.BINARY)
        missing = [b for b in wanted if not (directory / b).is_file()]
        if missing:
            hint = f": {controller_manager.MISSING_HINT}" if controller_manager.BINARY in missing else ""
            raise FileNotFoundError(f"KUBEBUILDER_ASSETS={assets} lacks {', '.join(missing)}{hint}")
        return directory
    result = subprocess.run(
        ["bash", str(BUILD_SCRIPT)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        if shutil.which("go") is None:
            return None
        raise RuntimeError(f"{BUILD_SCRIPT.name} failed with exit code {result.returncode}")
    return Path(result.stdout.strip().splitlines()[-1])
