"""Two schedulers start together against 200 labelled namespaces: each discovers all of them on its own.

The numbers (requests per verb and resource from kube-apiserver's ``/metrics``, watches open, each
executor's own request counters) are printed and written to ``load.txt`` in the test's directory;
docs/operations.md quotes them. The test asserts what must hold whatever the machine's speed:
every scheduler settles with every namespace permitted and watched, and the API server holds one
pod watch per namespace per scheduler. ``HA_LOAD_STEADY_SECONDS`` (default 30) sets the steady
window measured after that.
"""

from __future__ import annotations

import os

import pytest

from kubeharness import require_cluster
from tests.harness.ha_load import POD_WATCHES, LoadResult, LoadScenario
from tests.harness.postgres import require_postgres

NAMESPACES = 200
SCHEDULERS = 2
STEADY_SECONDS = float(os.environ.get("HA_LOAD_STEADY_SECONDS", "30"))

pytestmark = pytest.mark.timeout(600 + STEADY_SECONDS)


@pytest.fixture(scope="module")
def load(tmp_path_factory: pytest.TempPathFactory) -> LoadResult:
    require_postgres()
    workdir = tmp_path_factory.mktemp("ha-load")
    with LoadScenario(require_cluster(), workdir, namespaces=NAMESPACES, schedulers=SCHEDULERS) as scenario:
        scenario.start()
        result = scenario.run(steady_seconds=STEADY_SECONDS)
    (workdir / "load.txt").write_text(result.summary() + "\n")
    print(f"\n{result.summary()}")
    return result


def test_each_of_two_schedulers_started_together_discovers_and_watches_every_labelled_namespace(
    load: LoadResult,
) -> None:
    everything = NAMESPACES + 1  # and the home namespace
    assert set(load.gauges) == {"scheduler-1", "scheduler-2"}
    for name, gauges in load.gauges.items():
        assert (gauges["namespaces.permitted"], gauges["watchers_running"]) == (everything, everything), name
        assert gauges["namespaces.forbidden"] == 0, name
    # Each scheduler holds its own pod watch per namespace: no sharing between replicas.
    assert load.watches[POD_WATCHES] >= SCHEDULERS * everything, load.watches


def test_each_scheduler_reviews_its_access_to_every_namespace_itself(load: LoadResult) -> None:
    """Every replica pays its own access reviews: the API server saw at least one per namespace
    per scheduler by the time they had settled, and each executor counted its own."""
    reviews = sum(
        count
        for kind, count in load.start.items()
        if "subjectaccessreviews" in kind or "subjectrulesreviews" in kind
    )
    assert reviews >= SCHEDULERS * NAMESPACES, load.start
    for name, counts in load.client_requests.items():
        assert sum(counts.values()) > 0, name
