"""Fixtures for the provider's integration tests, on the cluster kubeharness.pytest_plugin starts
(tests/conftest.py loads it): identities, executors, discovery and outages."""

from __future__ import annotations

import contextlib
import random
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import urllib3
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from airflow_provider_nsdiscovery.config import DiscoverySettings
from airflow_provider_nsdiscovery.discovery.controller import NamespaceDiscovery
from airflow_provider_nsdiscovery.discovery.wiring import connect
from kubeharness import (
    NAMESPACE_READ_RULES,
    Cluster,
    ControlPlane,
    Identity,
    NamespaceFactory,
    wait_until,
)
from tests.airflow_env import migrate_database
from tests.harness.executor_pods import POD_RULES
from tests.integration.executor_helpers import TEMPLATE, Executor
from tests.integration.faults import team_namespace

_HERE = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark by location so no integration test can forget the marker and dodge `-m`."""
    for item in items:
        if item.path.is_relative_to(_HERE):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def airflow_db() -> None:
    """The executor reads task states from the metadata database, so it must have its tables."""
    migrate_database()


@pytest.fixture
def selector_label() -> str:
    """A label key unique to the test, so no test's discovery selects another test's namespaces."""
    return f"nsd-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def scheduler(control_plane: Cluster, ns_factory: NamespaceFactory) -> Identity:
    """The scheduler's identity as deploy/ grants it: namespaces read cluster-wide, pods at home."""
    home = ns_factory()
    return control_plane.service_account_client(
        home, "scheduler", cluster_rules=NAMESPACE_READ_RULES, namespace_rules={home: POD_RULES}
    )


@pytest.fixture
def team(
    control_plane: Cluster, ns_factory: NamespaceFactory, scheduler: Identity, selector_label: str
) -> Callable[[], str]:
    """Makes a namespace labelled for discovery, with the pod rights the scheduler needs there."""
    return lambda: team_namespace(control_plane, ns_factory, scheduler, selector_label)


@pytest.fixture
def make_executor(
    monkeypatch: pytest.MonkeyPatch, scheduler: Identity, selector_label: str, airflow_db: None
) -> Iterator[Callable[..., Executor]]:
    started: list[Executor] = []

    def make(identity: Identity = scheduler, job_id: int | None = None, **discovery: str) -> Executor:
        env = {
            "KUBERNETES_EXECUTOR__IN_CLUSTER": "False",
            "KUBERNETES_EXECUTOR__CONFIG_FILE": str(identity.kubeconfig_path),
            "KUBERNETES_EXECUTOR__NAMESPACE": identity.namespace,
            "KUBERNETES_EXECUTOR__POD_TEMPLATE_FILE": str(TEMPLATE),
            "KUBERNETES_EXECUTOR__WORKER_CONTAINER_REPOSITORY": "busybox",
            "KUBERNETES_EXECUTOR__WORKER_CONTAINER_TAG": "1.36",
            "KUBERNETES_EXECUTOR__POD_LAUNCH_FAILURE_RETRIES": "0",
            "KUBERNETES_NAMESPACE_DISCOVERY__LABEL_SELECTOR": f"{selector_label}=true",
            **{f"KUBERNETES_NAMESPACE_DISCOVERY__{k.upper()}": v for k, v in discovery.items()},
        }
        for key, value in env.items():
            monkeypatch.setenv(f"AIRFLOW__{key}", value)
        executor = Executor()
        executor.job_id = job_id if job_id is not None else random.randint(10_000, 10_000_000)
        executor.start()
        started.append(executor)
        return executor

    yield make
    for executor in started:
        executor.end()


@pytest.fixture
def outage(
    control_plane: Cluster,
    admin: client.CoreV1Api,
    ns_factory: NamespaceFactory,
    make_executor: Callable[..., Executor],
) -> Iterator[Cluster]:
    """The session's control plane, for a test to crash or freeze; it answers again once the
    test is over.

    Requesting ns_factory and make_executor first means this teardown runs before theirs, so the
    executors stop and the namespaces are deleted against a healthy API server.
    """
    yield control_plane
    if isinstance(control_plane, ControlPlane):  # a restart that failed half-way left a process dead
        control_plane.revive()

    def answers() -> bool:
        with contextlib.suppress(ApiException, urllib3.exceptions.HTTPError):
            admin.list_namespace(limit=1, _request_timeout=5)
            return True
        return False

    wait_until(answers, "the control plane to answer again", timeout=60.0)
    if isinstance(control_plane, ControlPlane):
        control_plane.restart_controller_manager()


@pytest.fixture
def start_discovery(scheduler: Identity, selector_label: str) -> Iterator[Callable[..., NamespaceDiscovery]]:
    started: list[NamespaceDiscovery] = []

    def start(identity: Identity = scheduler, **overrides: Any) -> NamespaceDiscovery:
        """Settings are this test's selector and the identity's home, unless ``overrides`` says."""
        defaults = {"home_namespace": identity.namespace, "label_selector": f"{selector_label}=true"}
        discovery = connect(DiscoverySettings(**{**defaults, **overrides}), identity.api_client)
        discovery.start()
        started.append(discovery)
        return discovery

    yield start
    for discovery in started:
        discovery.stop()
