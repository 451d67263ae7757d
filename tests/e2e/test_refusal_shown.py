"""A refused task's reason and fix, where its user looks: the Airflow UI's task log and audit log.

A real Airflow 3 (api-server, scheduler, dag-processor) against a real API server runs
tests/e2e/refusal_dags/refused_tasks.py, whose two tasks are refused before any pod is made (see
tests/harness/refusal_scenario.py). A headless Chromium, driven by Playwright, signs in as a user
would and reads the failed try's log and audit log; the REST API is asked the same. Screenshots
are kept in the test's tmp dir and copied to test-artifacts/ in the repository.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_nsdiscovery.discovery import remedies
from airflow_provider_nsdiscovery.discovery.permissions import REQUIRED_PERMISSIONS
from airflow_provider_nsdiscovery.executor_config import executor_config_problem
from airflow_provider_nsdiscovery.executors.refusal_log import NOT_RUN, REFUSED_EVENT
from kubeharness import require_cluster, wait_until
from kubeharness.processes import tail
from tests.harness.airflow_stack import REPO_ROOT, STACK_POLL, AirflowStack, TaskInstance
from tests.harness.airflow_ui import AirflowUI, require_browser
from tests.harness.refusal_scenario import DAG_ID, FORBIDDEN_NAMESPACE, TASK_IDS, RefusalScenario

log = logging.getLogger(__name__)

SCHEDULER = "system:serviceaccount:airflow:scheduler"
ARTIFACTS = REPO_ROOT / "test-artifacts"
LOG_DEADLINE_SECONDS = 30.0
"""From the task's failure to its log lines: the writer thread takes milliseconds; CI may stall."""

pytestmark = pytest.mark.timeout(600)


def expected_lines() -> dict[str, list[tuple[str, str]]]:
    """(level, text) of each refused task's log, from the same functions the executor uses."""
    lacks = ", ".join(str(permission) for permission in REQUIRED_PERMISSIONS)
    fix = remedies.rbac_fix(FORBIDDEN_NAMESPACE, SCHEDULER, [str(p) for p in REQUIRED_PERMISSIONS])
    problem = executor_config_problem({"KubernetesExecutor": {"namespace": FORBIDDEN_NAMESPACE}})
    assert problem is not None
    return {
        "forbidden": [
            (
                "error",
                f"Task not launched: namespace '{FORBIDDEN_NAMESPACE}' is forbidden: scheduler identity "
                f"{SCHEDULER} lacks: {lacks} in {FORBIDDEN_NAMESPACE}",
            ),
            ("error", f"To fix: {fix}"),
            ("info", NOT_RUN),
        ],
        "old_form": [("error", f"Task not launched: {problem}"), ("info", NOT_RUN)],
    }


@dataclass
class Refused:
    scenario: RefusalScenario
    stack: AirflowStack
    tis: dict[str, TaskInstance]


@pytest.fixture(scope="module")
def refused(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Refused]:
    require_browser()  # before a minute of set-up, not after
    workdir = tmp_path_factory.mktemp("refusal")
    with RefusalScenario(require_cluster(), workdir, progress=log.info) as scenario:
        try:
            stack = scenario.start()
            tis = scenario.run()
        except BaseException:
            if scenario.stack is not None:
                scheduler_log = tail(scenario.stack.log_path("scheduler"), 80)
                print(f"--- last lines of the scheduler log:\n{scheduler_log}")
            raise
        yield Refused(scenario, stack, tis)


@pytest.fixture(scope="module")
def ui(refused: Refused) -> Iterator[AirflowUI]:
    """One browser, signed in once, for the module's UI checks."""
    with AirflowUI(refused.stack.base_url, "admin", refused.stack.password) as browser:
        browser.sign_in()
        yield browser


def log_lines(refused: Refused, task_id: str) -> list[dict[str, Any]]:
    """The try's log as the REST API serves it to the UI, source details left out."""
    response = refused.stack.http.get(
        f"/dags/{DAG_ID}/dagRuns/{refused.scenario.run_id}/taskInstances/{task_id}/logs/1",
        headers={"Accept": "application/json"},
    )
    response.raise_for_status()
    return [line for line in response.json()["content"] if line.get("level")]


def test_both_tasks_failed_in_their_first_try_without_running(refused: Refused) -> None:
    assert {t.task_id: (t.state, t.try_number) for t in refused.tis.values()} == dict.fromkeys(
        TASK_IDS, ("failed", 1)
    )


def test_the_rest_api_serves_each_refused_try_s_log_with_the_reason_and_the_fix(refused: Refused) -> None:
    for task_id, expected in expected_lines().items():

        def written(task_id: str = task_id) -> list[dict[str, Any]]:
            return log_lines(refused, task_id)

        lines = wait_until(
            written, f"the log lines of {task_id}", timeout=LOG_DEADLINE_SECONDS, interval=STACK_POLL
        )
        assert [(line["level"], line["event"]) for line in lines] == expected


def test_the_ui_shows_the_refused_try_s_log_with_the_reason_and_the_fix(
    refused: Refused, ui: AirflowUI, tmp_path: Path
) -> None:
    reason, fix, not_run = (text for _, text in expected_lines()["forbidden"])
    ui.open_task_log(DAG_ID, refused.scenario.run_id, "forbidden", 1)
    ui.wait_for_text(reason)
    ui.wrap_log_lines()
    for text in (fix, not_run):
        ui.wait_for_text(text)
    shot = ui.screenshot(tmp_path / "refused-task-log.png", ARTIFACTS / "refused-task-log.png")
    assert shot.stat().st_size > 0


def test_each_refusal_is_one_namespace_refused_event_in_the_audit_log_and_the_ui(
    refused: Refused, ui: AirflowUI, tmp_path: Path
) -> None:
    run_id = refused.scenario.run_id
    for task_id, expected in expected_lines().items():
        events = refused.stack.event_logs(DAG_ID, run_id, task_id, REFUSED_EVENT)
        assert [event["try_number"] for event in events] == [1], events
        # The executor's whole message: what the scheduler log and the failure info say too.
        reason = refused.stack.executor_failure_reason(DAG_ID, run_id, task_id, 1)
        assert events[0]["extra"] == reason
        assert reason is not None
        assert expected[0][1].removeprefix("Task not launched: ") in reason
    ui.open_task_audit_log(DAG_ID, run_id, "forbidden")
    ui.wait_for_text(REFUSED_EVENT)
    ui.screenshot(tmp_path / "refused-task-audit-log.png", ARTIFACTS / "refused-task-audit-log.png")


def test_each_refused_task_was_reported_once_and_nothing_failed_on_the_way(refused: Refused) -> None:
    scheduler_log = refused.stack.log_path("scheduler").read_text(errors="replace")
    for task_id in TASK_IDS:
        received = (
            "Received executor event with state failed for task instance "
            f"TaskInstanceKey(dag_id='{DAG_ID}', task_id='{task_id}', run_id='{refused.scenario.run_id}'"
        )
        assert scheduler_log.count(received) == 1, task_id
    assert "discovery loops not healthy" not in scheduler_log
    assert "Something went wrong when trying to save task event logs" not in scheduler_log
    assert "write the refusal into the task log" not in scheduler_log  # how the writer's failures begin
