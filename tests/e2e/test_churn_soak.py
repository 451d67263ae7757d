"""The churn soak, short: a real scheduler keeps working while namespaces, RBAC and the API server churn.

With dynamic namespaces, losing a label or a RoleBinding, a namespace deleted and recreated, or
an API-server restart are normal events, not outages; each must cost the scheduler nothing
beyond the tasks it concerns. An earlier soak of this kind found the scheduler's main loop
spinning on pods it could not delete (a 446 MB log, the heartbeat 83 s stale) and a discovery
thread dead for good. :class:`tests.harness.churn_soak.ChurnSoak` runs the scheduler through
``SOAK_SECONDS`` (default 90) of seeded random churn (``SOAK_SEED``), restores everything and
measures; each test here checks one promise against that one run. ``make soak`` runs the same
soak for 8 minutes (``bench/soak.py``).
"""

from __future__ import annotations

import logging
import os

import pytest

from kubeharness import require_cluster
from tests.harness.churn_soak import ChurnSoak, reported
from tests.harness.soak_result import SoakBounds, SoakResult, default_bounds

log = logging.getLogger(__name__)

SOAK_SECONDS = float(os.environ.get("SOAK_SECONDS", "90"))
SOAK_SEED = int(os.environ.get("SOAK_SEED", "1127"))

# Set-up (~25 s), churn, the tasks settling (~1-2 min here) and stopping, with room for a slow machine.
pytestmark = pytest.mark.timeout(SOAK_SECONDS + 1200)


@pytest.fixture(scope="module")
def soak(tmp_path_factory: pytest.TempPathFactory) -> SoakResult:
    """One soak for the module; everything it started is stopped before the tests look at it."""
    workdir = tmp_path_factory.mktemp("soak")
    with ChurnSoak(require_cluster(), workdir, seed=SOAK_SEED, progress=log.info) as driver, reported(driver):
        driver.start()
        result = driver.run(SOAK_SECONDS)
    (workdir / "result.json").write_text(result.to_json())
    print(f"\n{result.summary()}")
    return result


@pytest.fixture(scope="module")
def bounds(soak: SoakResult) -> SoakBounds:
    return default_bounds(soak.heartbeat_interval)


def kept(soak: SoakResult, bounds: SoakBounds, promise: str) -> None:
    broken = soak.violations(bounds).get(promise)
    assert broken is None, f"{broken}\n{soak.summary()}"


def test_the_soak_churned_labels_rolebindings_and_the_api_server_while_tasks_ran(soak: SoakResult) -> None:
    """Otherwise every other test here could pass without having been put to the test."""
    assert soak.apiserver_restarts >= 1, soak.actions
    done = {name for name, count in soak.actions.items() if count and "(" not in name}
    assert {"unlabel", "remove-rolebinding"} <= done, soak.actions
    assert soak.states.get("success", 0) > 0, soak.states
    assert soak.states.get("failed", 0) > 0, soak.states  # some tasks met a refusal
    assert len(soak.pods_by_namespace) >= 3, soak.pods_by_namespace


def test_the_scheduler_keeps_its_heartbeat_while_everything_around_it_churns(
    soak: SoakResult, bounds: SoakBounds
) -> None:
    """A stalled or spinning main loop shows first as a late heartbeat. The bound is not 2 x the
    heartbeat interval: see ``default_bounds`` for what was measured on a shared 2-core machine."""
    kept(soak, bounds, "heartbeat")


def test_the_scheduler_log_has_no_traceback_storm_and_stays_small(
    soak: SoakResult, bounds: SoakBounds
) -> None:
    """One traceback per failure streak of a loop, not one per attempt."""
    kept(soak, bounds, "tracebacks")
    kept(soak, bounds, "log size")


def test_no_scheduler_thread_dies(soak: SoakResult, bounds: SoakBounds) -> None:
    """A dead discovery or watcher thread silently ends a promise (revocations never noticed)."""
    kept(soak, bounds, "dead thread")


def test_every_task_instance_finishes_once_the_churn_stops(soak: SoakResult, bounds: SoakBounds) -> None:
    kept(soak, bounds, "stuck")


def test_no_executor_pod_is_left_behind(soak: SoakResult, bounds: SoakBounds) -> None:
    """Pods whose deletion was refused or met a down API server are deleted once it is possible."""
    kept(soak, bounds, "orphans")


def test_no_task_try_ever_gets_two_pods(soak: SoakResult, bounds: SoakBounds) -> None:
    """From every pod the API server ever held (an admin watch), keyed on the executor's annotations."""
    kept(soak, bounds, "duplicates")


def test_every_task_the_executor_fails_says_which_namespace_and_why(
    soak: SoakResult, bounds: SoakBounds
) -> None:
    """A refused or abandoned task must tell its owner what to fix, in the task's audit log."""
    kept(soak, bounds, "reasons")


def test_a_pod_creation_that_meets_an_api_server_restart_does_not_fail_its_task(
    soak: SoakResult, bounds: SoakBounds
) -> None:
    """A create that never reached the server, or met 429/503, defers the task: it is no answer."""
    kept(soak, bounds, "transient errors")


def test_no_task_is_refused_for_a_label_or_rolebinding_its_namespace_has(
    soak: SoakResult, bounds: SoakBounds
) -> None:
    """A refusal as forbidden while the RoleBinding has been in force for a whole re-check interval,
    as not selected while the label has been there for seconds, or with a bare 403 that the
    executor's own re-check did not confirm, sends its owner after a fix for nothing."""
    kept(soak, bounds, "false refusals")


def test_after_the_churn_every_namespace_runs_tasks_again(soak: SoakResult, bounds: SoakBounds) -> None:
    """Labels and RoleBindings restored: a new run succeeds everywhere, without a scheduler restart."""
    kept(soak, bounds, "recovery")
