"""Choosing a cluster: the local control plane where its binaries can be had, else K3s."""

from __future__ import annotations

import os

import pytest

from kubeharness.binaries import ENABLE_HINT, find_binaries
from kubeharness.cluster import Cluster
from kubeharness.controlplane import ControlPlane
from kubeharness.k3s import k3s_control_plane


def resolve() -> Cluster | None:
    """The best available cluster, not yet started: local binaries, then K3s."""
    binaries = find_binaries()
    if binaries is not None:
        return ControlPlane(binaries)
    return k3s_control_plane()


def require_cluster() -> Cluster:
    """resolve(), or skip with how to enable integration tests; in CI a skip would hide the
    fact that nothing was tested, so it fails instead."""
    cluster = resolve()
    if cluster is not None:
        return cluster
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true but {ENABLE_HINT}", pytrace=False)
    pytest.skip(ENABLE_HINT)
