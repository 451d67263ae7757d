"""The demo's scenario, asserted: a real Airflow 3 scheduler runs example_dags/namespaces_demo.py.

kube-apiserver + etcd, a ServiceAccount ``airflow/scheduler`` with real RBAC, ``airflow
api-server``/``scheduler``/``dag-processor`` processes with DynamicNamespaceKubernetesExecutor, and
a kubelet stand-in that runs task pods as local processes. The scenario runs once for the module
(about a minute); each test checks one promise of the provider against what happened.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from airflow_provider_nsdiscovery.discovery import remedies
from airflow_provider_nsdiscovery.discovery.permissions import REQUIRED_PERMISSIONS
from airflow_provider_nsdiscovery.discovery.status import State
from airflow_provider_nsdiscovery.executors.metrics import PREFIX
from kubeharness import require_cluster
from kubeharness.processes import tail
from tests.harness.namespaces_scenario import HOME_NAMESPACE, NamespacesScenario, Outcome

log = logging.getLogger(__name__)

SCHEDULER = "system:serviceaccount:airflow:scheduler"
ALL_REQUIRED = tuple(str(p) for p in REQUIRED_PERMISSIONS)
REFUSAL_DEADLINE_SECONDS = 15.0
"""Queued -> failed for a refused task: one or two scheduler loops, with room for a slow CI machine."""

pytestmark = pytest.mark.timeout(900)


@dataclass
class Results:
    scenario: NamespacesScenario
    first: dict[str, Outcome]
    rerun: Outcome
    scheduler_pid_before: int
    scheduler_pid_after: int


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Results]:
    workdir = tmp_path_factory.mktemp("e2e")
    with NamespacesScenario(require_cluster(), workdir, progress=log.info) as scenario:
        try:
            scenario.start()
            assert scenario.stack is not None
            pid_before = scenario.stack.pid("scheduler")
            first = scenario.run_dag()
            rerun = scenario.label_team_c_and_rerun()
            pid_after = scenario.stack.pid("scheduler")
        except BaseException:
            if scenario.stack is not None:
                for what, where in scenario.log_locations().items():
                    print(f"--- {what}: {where}")
                scheduler_log = tail(scenario.stack.log_path("scheduler"), 80)
                print(f"--- last lines of the scheduler log:\n{scheduler_log}")
            raise
        yield Results(scenario, first, rerun, pid_before, pid_after)


def pod_log(outcome: Outcome) -> str:
    assert outcome.pod is not None, f"{outcome.task_id}: no pod ran"
    return Path(outcome.pod.log_path).read_text(errors="replace")


def test_tasks_in_the_home_namespace_and_a_permitted_namespace_run_there(results: Results) -> None:
    for task_id, namespace in (("home", HOME_NAMESPACE), ("team_a", "team-a")):
        outcome = results.first[task_id]
        assert (outcome.state, outcome.try_number) == ("success", 1), outcome
        assert outcome.pod is not None
        assert outcome.pod.namespace == namespace
        assert outcome.pod.exit_code == 0
        # The task itself saw the namespace, through the downward API in the pod template.
        assert f"ran in namespace {namespace}, pod {outcome.pod.name}" in pod_log(outcome)


def test_a_labelled_namespace_without_rbac_is_refused_with_the_missing_verbs_and_the_fix(
    results: Results,
) -> None:
    outcome = results.first["team_b"]
    assert (outcome.state, outcome.try_number) == ("failed", 1), outcome
    reason = outcome.reason
    assert reason.startswith("namespace 'team-b' is forbidden: "), reason
    assert f"scheduler identity {SCHEDULER} lacks: " in reason
    for verb in (
        "create pods",
        "get pods",
        "list pods",
        "watch pods",
        "patch pods",
        "delete pods",
        "get pods/log",
    ):
        assert verb in reason
    assert remedies.rbac_fix("team-b", SCHEDULER, ALL_REQUIRED) in reason


def test_a_namespace_without_the_label_is_refused_with_the_label_command(results: Results) -> None:
    outcome = results.first["team_c"]
    assert (outcome.state, outcome.try_number) == ("failed", 1), outcome
    assert outcome.reason == (
        "namespace 'team-c' is not selected: it lacks label airflow-enabled=true "
        "(kubectl label namespace team-c airflow-enabled=true)"
    )


def test_refused_tasks_fail_at_once_and_the_scheduler_log_says_why(results: Results) -> None:
    stack = results.scenario.stack
    assert stack is not None
    scheduler_log = stack.log_path("scheduler").read_text(errors="replace")
    for task_id in ("team_b", "team_c"):
        outcome = results.first[task_id]
        ti = stack.task_instances("namespaces_demo", results.scenario.run_id)[task_id]
        if ti.try_number == 1:  # team_c has been re-run since; its first try is checked through the log
            assert ti.queued_when is not None
            assert ti.end_date is not None
            assert (ti.end_date - ti.queued_when).total_seconds() < REFUSAL_DEADLINE_SECONDS
        assert f"task_id='{task_id}'" in scheduler_log
        assert f"not launched: {outcome.reason}" in scheduler_log


def test_no_pod_is_ever_created_in_a_refused_namespace(results: Results) -> None:
    """Every pod ADDED event, from a watch that ran the whole time, not a final list."""
    events = results.scenario.pod_events
    assert events is not None
    assert events.added("team-b") == []
    labelled_at = results.scenario.team_c_labelled_at
    assert labelled_at is not None
    team_c = events.added("team-c")
    assert [pod for pod in team_c if pod.resource_version < labelled_at] == []
    assert len(team_c) == 1, team_c  # the re-run's pod, created after the label
    assert {pod.namespace for pod in events.added(HOME_NAMESPACE) + events.added("team-a")} == {
        HOME_NAMESPACE,
        "team-a",
    }


def test_labelling_a_namespace_lets_its_task_run_without_a_scheduler_restart(results: Results) -> None:
    rerun = results.rerun
    assert (rerun.state, rerun.try_number) == ("success", 2), rerun
    assert rerun.pod is not None
    assert rerun.pod.namespace == "team-c"
    assert "ran in namespace team-c" in pod_log(rerun)
    assert results.scheduler_pid_after == results.scheduler_pid_before


def test_metrics_reach_plain_statsd_with_each_state_and_refusal_reason_in_the_name(results: Results) -> None:
    """Plain StatsD (the Helm chart's default) drops tags: the name alone must tell states apart."""
    assert results.scenario.statsd is not None
    lines = results.scenario.statsd.lines()
    stem = f"airflow.{PREFIX}"
    last_gauge = {name: value for name, _, value in (_parse(line) for line in lines) if name.startswith(stem)}
    assert float(last_gauge[f"{stem}.namespaces.permitted"]) >= 2  # home and team-a at least
    assert float(last_gauge[f"{stem}.namespaces.forbidden"]) >= 1  # team-b
    assert {f"{stem}.namespaces.{state.value}" for state in State} <= set(last_gauge)
    refusals = {
        name.removeprefix(f"{stem}.refusals.") for name, kind, _ in map(_parse, lines) if ".refusals." in name
    }
    assert {"forbidden", "not-selected"} <= refusals


def _parse(line: str) -> tuple[str, str, str]:
    """``name:value|type`` into (name, type, value)."""
    name, _, rest = line.partition(":")
    value, _, kind = rest.partition("|")
    return name, kind.partition("|")[0], value
