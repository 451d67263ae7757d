"""The steady-state bench's own counting: new connections per process tree, and the review-rate goal."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import closing, contextmanager
from typing import Any

from bench.nsbench.probes import ConnectionSampler
from bench.nsbench.report.steady import goal_line, totals
from kubeharness import wait_until


@contextmanager
def listening() -> Iterator[socket.socket]:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    with closing(server):
        yield server


def _connect_and_accept(server: socket.socket) -> tuple[socket.socket, socket.socket]:
    client = socket.create_connection(server.getsockname())
    accepted, _ = server.accept()
    return client, accepted


def test_a_new_connection_of_the_watched_process_tree_is_counted_as_the_executors() -> None:
    with listening() as server:
        sampler = ConnectionSampler(server.getsockname()[1], os.getpid(), interval=0.1)
        try:
            client, accepted = _connect_and_accept(server)
            with closing(client), closing(accepted):
                wait_until(lambda: sampler.read()["new_tree"] >= 1, "the connection seen as ours")
            assert sampler.read()["new_all"] == 1
        finally:
            sampler.stop()


def test_a_connection_of_another_process_counts_for_all_clients_only() -> None:
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        with listening() as server:
            sampler = ConnectionSampler(server.getsockname()[1], other.pid, interval=0.1)
            try:
                client, accepted = _connect_and_accept(server)
                with closing(client), closing(accepted):
                    wait_until(lambda: sampler.read()["new_all"] >= 1, "the connection seen at all")
                    samples = sampler.read()["samples"]
                    wait_until(lambda: sampler.read()["samples"] > samples, "one more sample")
                assert sampler.read()["new_tree"] == 0
            finally:
                sampler.stop()
    finally:
        other.kill()
        other.wait()


def _steady(n: int, reviews_per_bucket: list[int]) -> dict[str, Any]:
    rows = [
        {
            "from_s": 10.0 + 60 * i,
            "to_s": 70.0 + 60 * i,
            "requests": {"POST selfsubjectrulesreviews": r, "WATCH pods": 5},
            "new_conns": {"new_tree": 5, "new_all": 6, "samples": 60},
            "cpu_pct": {"scheduler": 1.0, "apiserver": 2.0, "etcd": 0.5},
        }
        for i, r in enumerate(reviews_per_bucket)
    ]
    run = {"impl": "ours", "n": n, "watchers": n + 1, "window_s": (10.0, rows[-1]["to_s"]), "rows": rows}
    return {"n": n, "impls": {"ours": run}}


def test_the_review_goal_is_judged_by_the_rate_over_the_whole_window_burst_included() -> None:
    # One bucket of 120 reviews (2 per second) among eleven quiet ones: 0.17 per second overall.
    steady = _steady(1000, [0] * 5 + [120] + [0] * 6)

    line, met = goal_line(steady)

    assert met is True
    assert "0.167 per second" in line
    assert "10-730 s after start()" in line


def test_the_review_goal_is_missed_at_one_review_per_second() -> None:
    _, met = goal_line(_steady(1000, [60] * 12))

    assert met is False


def test_the_review_goal_is_not_judged_at_another_n() -> None:
    line, met = goal_line(_steady(100, [0] * 12))

    assert met is None
    assert "not judged" in line


def test_totals_count_a_bucket_once_and_rate_per_namespace_per_hour() -> None:
    t = totals(_steady(1000, [1] * 12)["impls"]["ours"])

    counted = (t["seconds"], t["reviews"], t["watch_ended"], t["conns"], t["conns_all"])
    assert counted == (720.0, 12, 60, 60, 72)
