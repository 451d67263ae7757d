"""The benchmark's own arithmetic: the other-load monitor, the summary of repeated runs, its gaps."""

from __future__ import annotations

import math

from bench.nsbench.probes import CpuSampler
from bench.nsbench.report.access_paths import access_paths_reading
from bench.nsbench.report.runs import across_runs, normalized, spread

ME, CHILD, GRANDCHILD = (100, 1.0), (200, 2.0), (300, 3.0)


def test_a_reaped_child_is_counted_once_not_as_its_whole_history() -> None:
    before = {ME: (1.0, 1), CHILD: (5.0, ME[0])}
    # The child used 0.3 s more, exited and was reaped: its 5.3 s moved into our children counters.
    after = {ME: (1.1 + 5.3, 1)}

    assert math.isclose(CpuSampler.ours_delta(before, after), 0.4)


def test_an_orphan_of_a_killed_process_group_never_makes_our_cpu_negative() -> None:
    before = {ME: (1.0, 1), CHILD: (2.0, ME[0]), GRANDCHILD: (30.0, CHILD[0])}
    # Child and grandchild killed together: we reap the child (2.1 s); init reaps the grandchild.
    after = {ME: (1.0 + 2.1, 1)}

    assert math.isclose(CpuSampler.ours_delta(before, after), 0.1)


def test_a_process_started_between_samples_counts_from_zero() -> None:
    before = {ME: (1.0, 1)}
    after = {ME: (1.0, 1), CHILD: (0.25, ME[0])}

    assert math.isclose(CpuSampler.ours_delta(before, after), 0.25)


def test_repeated_runs_report_the_median_p99_its_spread_and_the_overall_max() -> None:
    runs = [[float(v) for v in range(1, 101)], [float(v) for v in range(101, 201)], [5.0] * 100]

    st = across_runs(runs)

    assert (st["p99"], st["p99_min"], st["p99_max"], st["max"]) == (99.0, 5.0, 199.0, 200.0)
    assert st["n"] == 300
    assert spread(st) == "5.0-199"


def test_a_single_run_has_no_spread() -> None:
    assert spread(across_runs([[1.0, 2.0, 3.0]])) == "—"


def test_a_results_file_from_before_repetitions_reads_as_one_run() -> None:
    old = {"latency": {"label_to_watcher": [1.0, 2.0]}, "validation": {"hit": {"best": 0.5}}, "scale": []}

    results = normalized(old)

    assert len(results["latency_runs"]) == 1
    assert results["latency"] == old["latency"]
    assert results["validation"] == old["validation"]


def test_samples_of_repeated_runs_are_pooled_and_counts_added() -> None:
    runs = [
        {"latency": {"label_to_pod": [1.0], "label_to_pod_refused": 1, "recheck_interval": 2.0}},
        {"latency": {"label_to_pod": [2.0], "label_to_pod_refused": 0, "recheck_interval": 2.0}},
    ]

    pooled = normalized({"latency_runs": runs, "scale": []})["latency"]

    assert pooled == {"label_to_pod": [1.0, 2.0], "label_to_pod_refused": 1, "recheck_interval": 2.0}


def _latency_results(**samples: list[float]) -> dict[str, object]:
    return normalized({"latency_runs": [{"latency": dict(samples)}], "scale": []})


def test_a_drain_stop_over_its_goal_is_a_gap_and_a_watched_revocation_under_its_goal_is_not() -> None:
    results = _latency_results(
        revoke_watched_to_forbidden=[10.0] * 50,
        revoke_watched_to_stopped=[12.0] * 50,
        drain_to_stopped=[50.0] * 49 + [900.0],
        drain_to_task_done=[45.0] * 49 + [890.0],
        drain_task_done_to_stopped=[5.0] * 50,
    )
    out: list[str] = []
    gaps: list[str] = []

    access_paths_reading(results, out, gaps)

    assert len(gaps) == 1
    assert gaps[0].startswith("last pod finished in a draining namespace → watcher stopped: p99 900 ms")


def test_a_watched_revocation_that_never_happened_is_a_gap() -> None:
    results = _latency_results(
        revoke_watched_to_forbidden=[10.0] * 49 + [math.nan], revoke_watched_to_stopped=[12.0] * 50
    )
    gaps: list[str] = []

    access_paths_reading(results, [], gaps)

    assert gaps == [
        "RoleBinding removed → forbidden (RBAC watched): p99 10.0 ms vs goal < 250 ms, 1 never happened"
    ]
