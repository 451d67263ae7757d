"""Creates held back in a namespace whose API server refuses what its access review allows."""

from __future__ import annotations

import pytest

from airflow_provider_nsdiscovery.create_holds import HOLD, CreateHolds


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def test_a_namespace_never_refused_is_not_held(clock: Clock) -> None:
    assert CreateHolds(clock).held_for("team") == 0.0


def test_refusals_in_a_row_double_the_hold_up_to_the_longest(clock: Clock) -> None:
    holds = CreateHolds(clock)
    seen = []
    for _ in range(6):
        seen.append(holds.hold("team"))
        clock.now += seen[-1]  # the next try comes when the hold ends, and is refused again
    assert seen == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    assert max(seen) == HOLD[1]


def test_creates_wait_while_held_and_only_in_the_held_namespace(clock: Clock) -> None:
    holds = CreateHolds(clock)
    holds.hold("team")
    clock.now += 0.2
    assert holds.held_for("team") == pytest.approx(0.3)
    assert holds.held_for("other") == 0.0
    clock.now += 0.3
    assert holds.held_for("team") == 0.0


def test_a_refusal_long_after_the_last_starts_the_streak_again(clock: Clock) -> None:
    holds = CreateHolds(clock)
    holds.hold("team")
    clock.now += 0.5
    assert holds.hold("team") == 1.0
    clock.now += 1.0 + HOLD[1]
    assert holds.hold("team") == HOLD[0]


def test_an_answered_create_releases_the_namespace(clock: Clock) -> None:
    holds = CreateHolds(clock)
    holds.hold("team")
    holds.release("team")
    assert holds.held_for("team") == 0.0
    assert holds.hold("team") == HOLD[0]
