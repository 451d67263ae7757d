"""The keyed work queue keeps client-go's promises: de-duplicated, stingy, delayed, rate-limited."""

from __future__ import annotations

import threading

from airflow_provider_nsdiscovery.discovery.workqueue import WorkQueue
from tests.unit.discovery_fakes import FakeClock


def _queue() -> tuple[WorkQueue[str], FakeClock]:
    clock = FakeClock()
    return WorkQueue(clock, base_delay=1.0, max_delay=8.0), clock


def test_a_key_added_many_times_before_it_is_taken_is_handed_out_once() -> None:
    queue, _ = _queue()
    for _ in range(5):
        queue.add("team-a")
    assert queue.get_nowait() == "team-a"
    queue.done("team-a")
    assert queue.get_nowait() is None


def test_a_key_being_processed_is_not_handed_to_a_second_worker_but_comes_back_after_done() -> None:
    queue, _ = _queue()
    queue.add("team-a")
    assert queue.get_nowait() == "team-a"
    queue.add("team-a")  # a newer observation while a worker reconciles it
    assert queue.get_nowait() is None
    queue.done("team-a")
    assert queue.get_nowait() == "team-a"


def test_keys_are_handed_out_in_order_and_urgent_ones_first() -> None:
    queue, _ = _queue()
    for key in ("a", "b", "c"):
        queue.add(key)
    queue.add("c", urgent=True)
    queue.add("z", urgent=True)
    assert [queue.get_nowait() for _ in range(4)] == ["z", "c", "a", "b"]


def test_a_delayed_key_is_handed_out_only_once_its_time_has_come() -> None:
    queue, clock = _queue()
    queue.add_after("team-a", 10)
    clock.advance(9.9)
    assert queue.get_nowait() is None
    clock.advance(0.2)
    assert queue.get_nowait() == "team-a"


def test_the_earliest_of_several_delays_for_one_key_wins() -> None:
    queue, clock = _queue()
    queue.add_after("team-a", 30)
    queue.add_after("team-a", 5)
    clock.advance(5)
    assert queue.get_nowait() == "team-a"
    queue.done("team-a")
    clock.advance(60)
    assert queue.get_nowait() is None


def test_retries_back_off_exponentially_per_key_up_to_the_cap_and_forget_resets_them() -> None:
    queue, _ = _queue()
    delays = [queue.add_rate_limited("team-a") for _ in range(6)]
    ceilings = [1, 2, 4, 8, 8, 8]
    assert all(c / 2 <= d <= c for d, c in zip(delays, ceilings, strict=True))
    assert queue.add_rate_limited("team-b") <= 1.0  # another key has its own backoff
    queue.forget("team-a")
    assert queue.failures("team-a") == 0
    assert queue.add_rate_limited("team-a") <= 1.0


def test_a_blocked_get_wakes_for_a_new_key_and_returns_none_after_shut_down() -> None:
    queue: WorkQueue[str] = WorkQueue()
    got: list[str | None] = []
    took_first = threading.Event()

    def worker() -> None:
        got.append(queue.get(5))
        took_first.set()
        got.append(queue.get(5))

    thread = threading.Thread(target=worker)
    thread.start()
    queue.add("team-a")
    assert took_first.wait(5)
    queue.shut_down()
    thread.join(5)
    assert got == ["team-a", None]


def test_busy_counts_ready_and_processing_keys_but_not_delayed_ones() -> None:
    queue, _ = _queue()
    queue.add_after("later", 10)
    assert not queue.busy()
    queue.add("now")
    assert queue.busy()
    key = queue.get_nowait()
    assert queue.busy()
    assert key is not None
    queue.done(key)
    assert not queue.busy()
