"""Fixtures that give integration tests a real API server and throwaway namespaces."""

from __future__ import annotations

import contextlib
import os
import random
import signal
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import urllib3
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from airflow_provider_nsdiscovery.config import DiscoverySettings
from airflow_provider_nsdiscovery.discovery.controller import NamespaceDiscovery
from airflow_provider_nsdiscovery.discovery.wiring import connect
from tests.airflow_env import migrate_database
from tests.harness.controlplane import (
    ENABLE_HINT,
    NAMESPACE_READ_RULES,
    POD_RULES,
    Cluster,
    ControlPlane,
    Identity,
    NamespaceFactory,
    find_binaries,
    k3s_control_plane,
    require_cluster,
)
from tests.integration.executor_helpers import TEMPLATE, Executor
from tests.integration.faults import team_namespace
from tests.integration.waiting import wait_until

_HERE = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark by location so no integration test can forget the marker and dodge `-m`."""
    for item in items:
        if item.path.is_relative_to(_HERE):
            item.add_marker(pytest.mark.integration)


def pytest_collection_finish(session: pytest.Session) -> None:
    """Build the binaries before any test starts: a first build takes minutes, which would
    otherwise count against the first test's timeout. Later calls answer from the cache."""
    if not any(item.get_closest_marker("integration") for item in session.items):
        return
    capture = session.config.pluginmanager.getplugin("capturemanager")
    uncaptured = capture.global_and_fixture_disabled() if capture else contextlib.nullcontext()
    # Uncaptured so the build's progress reaches the terminal. A failure is not raised here,
    # where it would abort unit tests too: the fixture builds again and reports it per test.
    with uncaptured, contextlib.suppress(Exception):
        find_binaries()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Say once how to enable the tests, instead of once per skipped test under `-rs`."""
    skipped = terminalreporter.stats.get("skipped", [])
    if any(ENABLE_HINT in str(getattr(report, "longrepr", "")) for report in skipped):
        terminalreporter.write_line(f"integration tests skipped: {ENABLE_HINT}")


@pytest.fixture(scope="session")
def control_plane() -> Iterator[Cluster]:
    """One control plane per session: starting one costs seconds, a namespace costs nothing.

    NSDISCOVERY_CONTROL_PLANE=k3s (`make k3s`) insists on K3s, so that path is tested on a
    machine that could also build the process control plane (CI runners have Go).
    """
    if os.environ.get("NSDISCOVERY_CONTROL_PLANE") == "k3s":
        k3s = k3s_control_plane()
        if k3s is None:
            pytest.fail(
                "NSDISCOVERY_CONTROL_PLANE=k3s needs the k3s extra and a Docker engine", pytrace=False
            )
        with k3s as cluster:
            yield cluster
        return
    with require_cluster() as cluster:
        yield cluster


@pytest.fixture
def admin(control_plane: Cluster) -> Iterator[client.CoreV1Api]:
    with control_plane.admin_api_client() as api_client:
        yield client.CoreV1Api(api_client)


@pytest.fixture
def ns_factory(control_plane: Cluster) -> Iterator[NamespaceFactory]:
    """Unique namespaces, so tests sharing the session's cluster never see each other's pods."""
    created: list[str] = []

    def make(labels: Mapping[str, str] | None = None) -> str:
        name = f"t-{uuid.uuid4().hex[:10]}"
        control_plane.create_namespace(name, labels)
        created.append(name)
        return name

    yield make
    for name in created:
        # Best effort: the test may have deleted it already or left the API server down.
        with contextlib.suppress(ApiException, urllib3.exceptions.HTTPError):
            control_plane.delete_namespace(name)
        with contextlib.suppress(ApiException, urllib3.exceptions.HTTPError):
            control_plane.finish_namespace_deletion(name, wait=False)  # names are never reused


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
        with contextlib.suppress(ProcessLookupError, RuntimeError):
            os.kill(control_plane.apiserver_pid, signal.SIGCONT)  # a frozen one thaws
        if control_plane._etcd is None or control_plane._etcd.poll() is not None:
            control_plane._start_etcd()
        if control_plane._apiserver is None or control_plane._apiserver.poll() is not None:
            control_plane._start_apiserver()

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
