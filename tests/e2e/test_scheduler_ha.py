"""Scheduler high availability: a scheduler killed mid-task, its pods adopted by another one.

Airflow scales its scheduler by running replicas against one metadata database; each runs its own
executor, so each runs its own namespace discovery and pod watchers. When one dies, another must
take over its running pods, wherever discovery put them, without launching any of them twice.
:class:`tests.harness.ha_scenario.HaScenario` runs it once for the module on the real control plane
and PostgreSQL (about 2 minutes); each test checks one promise against that run.
"""

from __future__ import annotations

import collections
import logging
from collections.abc import Iterator

import pytest

from kubeharness import require_cluster
from tests.harness.ha_scenario import SURVIVOR, UNLABELLED, HaResult, HaScenario, describe
from tests.harness.postgres import require_postgres

log = logging.getLogger(__name__)

pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[HaScenario, HaResult]]:
    require_postgres()
    workdir = tmp_path_factory.mktemp("ha")
    with HaScenario(require_cluster(), workdir, progress=log.info) as ha:
        try:
            ha.start()
            result = ha.run()
        except BaseException:
            print(ha.logs())
            raise
        print(f"\n{describe(result)}")
        yield ha, result


@pytest.fixture(scope="module")
def result(scenario: tuple[HaScenario, HaResult]) -> HaResult:
    return scenario[1]


def test_the_killed_scheduler_s_pods_span_three_team_namespaces_one_unlabelled_one_set_by_the_mutation_hook(
    scenario: tuple[HaScenario, HaResult],
) -> None:
    """Otherwise the adoption tests below could pass without having been put to the test."""
    ha, result = scenario
    namespaces = {pod.namespace for pod in result.pods}
    assert namespaces == set(ha.namespace_of.values()), namespaces
    assert UNLABELLED in namespaces
    hooked = [pod for pod in result.pods if pod.annotations.get("task_id") == ha.hooked_task]
    assert {pod.namespace for pod in hooked} == {ha.namespace_of[ha.hooked_task]}, hooked
    assert all(labels[0] == str(result.victim_job) for labels in result.labels.values()), result.labels


def test_the_surviving_scheduler_adopts_every_running_pod_of_the_dead_one(result: HaResult) -> None:
    """Each pod is relabelled from the dead scheduler's job to the survivor's, and nothing else."""
    assert result.victim_job != result.survivor_job
    expected = [str(result.victim_job), str(result.survivor_job)]
    assert {pod: labels for pod, labels in result.labels.items() if labels != expected} == {}
    assert "attempting to adopt pod" in result.survivor_log


def test_every_task_succeeds_in_its_first_try_and_is_reported_finished_exactly_once(
    scenario: tuple[HaScenario, HaResult],
) -> None:
    """A task reset instead of adopted would run a second try; one reported twice, a double event."""
    ha, result = scenario
    assert len(result.task_instances) == len(ha.namespace_of) * ha.map_width
    wrong = {key: (ti.state, ti.try_number) for key, ti in result.task_instances.items()}
    assert {key: value for key, value in wrong.items() if value != ("success", 1)} == {}
    assert len(result.finished_reports) == len(result.task_instances), result.finished_reports
    assert {key: who for key, who in result.finished_reports.items() if who != [SURVIVOR]} == {}


def test_no_task_ever_gets_a_second_pod(scenario: tuple[HaScenario, HaResult]) -> None:
    """From every pod the API server ever held (an admin watch), keyed on the executor's annotations."""
    ha, result = scenario
    by_key = collections.Counter(pod.key for pod in result.pods)
    assert {key: count for key, count in by_key.items() if count > 1} == {}
    assert len(by_key) == len(ha.namespace_of) * ha.map_width


def test_the_survivor_deletes_the_adopted_pods_once_they_finish(result: HaResult) -> None:
    assert result.pods_left == []


def test_the_survivor_s_discovery_settles_with_the_unlabelled_namespace_drained(result: HaResult) -> None:
    """Its own gauges: home and two labelled teams permitted and watched, nothing draining or
    pending, every loop healthy (the dead scheduler had all four watched)."""
    assert result.victim_gauges_before["watchers_running"] == 4
    gauges = result.survivor_gauges
    assert (gauges["namespaces.permitted"], gauges["watchers_running"]) == (3, 3), gauges
    assert (gauges["namespaces.draining"], gauges["namespaces.pending"], gauges["loops.failing"]) == (0, 0, 0)
    assert gauges["namespaces.not-selected"] == 1, gauges  # the unlabelled one, seen as such
