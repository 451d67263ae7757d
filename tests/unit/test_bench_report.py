"""The benchmark's own arithmetic: the other-load monitor and the summary of repeated runs."""

from __future__ import annotations

import math

from bench.nsbench.probes import CpuSampler
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
