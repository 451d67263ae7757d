"""pytest fixtures for a real cluster: load with ``pytest_plugins = ["kubeharness.pytest_plugin"]``.

One cluster per session, because starting one costs seconds and a namespace costs nothing;
tests keep apart by working in namespaces of their own (``ns_factory``).
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator, Mapping

import pytest
import urllib3
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from kubeharness.binaries import ENABLE_HINT, find_binaries
from kubeharness.choose import require_cluster
from kubeharness.cluster import Cluster, NamespaceFactory


def pytest_collection_finish(session: pytest.Session) -> None:
    """Build the binaries before any test starts: a first build takes minutes, which would
    otherwise count against the first test's timeout. Later calls answer from the cache."""
    if not any("control_plane" in getattr(item, "fixturenames", ()) for item in session.items):
        return
    capture = session.config.pluginmanager.getplugin("capturemanager")
    uncaptured = capture.global_and_fixture_disabled() if capture else contextlib.nullcontext()
    # Uncaptured so the build's progress reaches the terminal. A failure is not raised here,
    # where it would abort tests that need no cluster: the fixture builds again and reports it.
    with uncaptured, contextlib.suppress(Exception):
        find_binaries()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Say once how to enable the tests, instead of once per skipped test under `-rs`."""
    skipped = terminalreporter.stats.get("skipped", [])
    if any(ENABLE_HINT in str(getattr(report, "longrepr", "")) for report in skipped):
        terminalreporter.write_line(f"integration tests skipped: {ENABLE_HINT}")


@pytest.fixture(scope="session")
def control_plane() -> Iterator[Cluster]:
    """The session's cluster, started on first use; skips (fails under CI=true) if none can be had."""
    with require_cluster() as cluster:
        yield cluster


@pytest.fixture
def admin(control_plane: Cluster) -> Iterator[client.CoreV1Api]:
    """The core API as cluster admin, on a client of the test's own."""
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
