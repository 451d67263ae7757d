"""Choosing a cluster: the local control plane where its binaries can be had, else K3s."""

from __future__ import annotations

import os

import pytest

from kubeharness.binaries import ENABLE_HINT, find_binaries
from kubeharness.cluster import Cluster
from kubeharness.controlplane import ControlPlane
from kubeharness.k3s import k3s_control_plane

FORCE_K3S = "NSDISCOVERY_CONTROL_PLANE"
"""Set to ``k3s`` (``make k3s``) to insist on K3s, so that path is tested on a machine that could
also build the local control plane (CI runners have Go)."""


def _k3s_forced() -> bool:
    return os.environ.get(FORCE_K3S) == "k3s"


def resolve() -> Cluster | None:
    """The best available cluster, not yet started: local binaries, then K3s."""
    if _k3s_forced():
        return k3s_control_plane()
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
    if _k3s_forced():
        pytest.fail(f"{FORCE_K3S}=k3s needs the k3s extra and a Docker engine", pytrace=False)
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true but {ENABLE_HINT}", pytrace=False)
    pytest.skip(ENABLE_HINT)
