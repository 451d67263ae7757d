"""Reconnect backoff and prompt interruption of blocked stream reads."""

from __future__ import annotations

import io
import socket

import pytest
import urllib3
from hypothesis import given, settings
from hypothesis import strategies as st

from airflow_provider_nsdiscovery import streaming
from airflow_provider_nsdiscovery.streaming import Backoff, Interruptible

# Backoff ---------------------------------------------------------------------------------------


class UpperBound:
    """``random`` stand-in whose ``uniform`` records its bounds and returns the upper one."""

    def __init__(self) -> None:
        self.bounds: list[tuple[float, float]] = []

    def uniform(self, low: float, high: float) -> float:
        self.bounds.append((low, high))
        return high


@pytest.fixture
def upper(monkeypatch: pytest.MonkeyPatch) -> UpperBound:
    fake = UpperBound()
    monkeypatch.setattr(streaming, "random", fake)
    return fake


def test_backoff_doubles_after_each_failure(upper: UpperBound) -> None:
    backoff = Backoff(initial=0.25, maximum=30.0)
    assert [backoff.next_delay() for _ in range(4)] == [0.25, 0.5, 1.0, 2.0]
    assert upper.bounds == [(0.125, 0.25), (0.25, 0.5), (0.5, 1.0), (1.0, 2.0)]


def test_backoff_stops_growing_at_the_maximum(upper: UpperBound) -> None:
    backoff = Backoff(initial=1.0, maximum=5.0)
    assert [backoff.next_delay() for _ in range(6)] == [1.0, 2.0, 4.0, 5.0, 5.0, 5.0]


def test_backoff_starts_over_after_a_reset(upper: UpperBound) -> None:
    backoff = Backoff(initial=0.5, maximum=30.0)
    for _ in range(5):
        backoff.next_delay()
    backoff.reset()
    assert backoff.next_delay() == 0.5


@settings(database=None)
@given(
    initial=st.floats(min_value=0.01, max_value=5.0),
    maximum=st.floats(min_value=0.01, max_value=60.0),
    attempts=st.integers(min_value=1, max_value=40),
)
def test_backoff_delay_stays_between_half_the_ceiling_and_the_ceiling(
    initial: float, maximum: float, attempts: int
) -> None:
    backoff = Backoff(initial=initial, maximum=maximum)
    for attempt in range(attempts):
        ceiling = min(maximum, initial * 2**attempt)
        delay = backoff.next_delay()
        assert ceiling / 2 <= delay <= ceiling
        assert delay <= maximum


def test_backoff_keeps_returning_the_maximum_after_a_long_outage() -> None:
    backoff = Backoff(initial=0.2, maximum=30.0)
    delays = [backoff.next_delay() for _ in range(1100)]
    assert 15.0 <= delays[-1] <= 30.0


# Interruptible ---------------------------------------------------------------------------------


class FakeResponse:
    def __init__(self, calls: list[str], name: str = "response") -> None:
        self.calls = calls
        self.name = name

    def shutdown(self) -> None:
        self.calls.append(f"{self.name}.shutdown")

    def close(self) -> None:
        self.calls.append(f"{self.name}.close")


class CloseOnlyResponse:
    def __init__(self) -> None:
        self.closed = False

    def close(self) -> None:
        self.closed = True


class BrokenSocketResponse(FakeResponse):
    def shutdown(self) -> None:
        raise OSError("socket is not connected")


def test_stop_shuts_down_and_closes_the_tracked_response() -> None:
    calls: list[str] = []
    stream = Interruptible()
    response = FakeResponse(calls)
    assert stream.track(response) is response
    assert calls == []
    stream.stop()
    assert stream.stopped.is_set()
    assert calls == ["response.shutdown", "response.close"]


def test_response_tracked_after_stop_is_shut_down_at_once() -> None:
    calls: list[str] = []
    stream = Interruptible()
    stream.stop()
    response = FakeResponse(calls)
    assert stream.track(response) is response
    assert calls == ["response.shutdown", "response.close"]


def test_stop_ends_only_the_latest_tracked_response() -> None:
    calls: list[str] = []
    stream = Interruptible()
    stream.track(FakeResponse(calls, "old"))
    stream.track(FakeResponse(calls, "new"))
    stream.stop()
    assert calls == ["new.shutdown", "new.close"]


def test_stop_with_nothing_tracked_only_marks_the_stream_stopped() -> None:
    stream = Interruptible()
    stream.stop()
    assert stream.stopped.is_set()


def test_response_without_shutdown_is_closed() -> None:
    stream = Interruptible()
    response = CloseOnlyResponse()
    stream.track(response)
    stream.stop()
    assert response.closed


def test_socket_error_while_shutting_down_does_not_escape_stop() -> None:
    stream = Interruptible()
    stream.track(BrokenSocketResponse([]))
    stream.stop()
    assert stream.stopped.is_set()


class FakeConnection:
    def close(self) -> None:
        pass


class FakePool:
    def __init__(self) -> None:
        self.returned: list[object] = []

    def _put_conn(self, connection: object) -> None:
        self.returned.append(connection)


def live_urllib3_response(shutdowns: list[int]) -> urllib3.HTTPResponse:
    """A real urllib3 response still attached to its connection, as a watch stream is while it runs."""
    return urllib3.HTTPResponse(
        body=io.BytesIO(b'{"type": "ADDED"}\n'),
        preload_content=False,
        connection=FakeConnection(),  # type: ignore[arg-type]
        pool=FakePool(),  # type: ignore[arg-type]
        sock_shutdown=shutdowns.append,
    )


def test_close_is_still_called_when_shutting_the_socket_down_fails() -> None:
    calls: list[str] = []
    stream = Interruptible()
    stream.track(BrokenSocketResponse(calls))
    stream.stop()
    assert calls == ["response.close"]


def test_stop_shuts_down_the_socket_of_a_live_urllib3_response() -> None:
    shutdowns: list[int] = []
    stream = Interruptible()
    response = stream.track(live_urllib3_response(shutdowns))
    stream.stop()
    assert shutdowns == [socket.SHUT_RD]
    assert response.closed


def test_stop_after_the_tracked_stream_was_closed_does_not_raise() -> None:
    stream = Interruptible()
    response = stream.track(live_urllib3_response([]))
    response.close()  # what kubernetes.watch.Watch.stream does when a watch ends
    stream.stop()
    assert stream.stopped.is_set()


def test_stopping_twice_is_harmless() -> None:
    shutdowns: list[int] = []
    stream = Interruptible()
    stream.track(live_urllib3_response(shutdowns))
    stream.stop()
    stream.stop()
    assert shutdowns == [socket.SHUT_RD]


def test_stop_after_the_tracked_response_was_released_to_the_pool_does_not_raise() -> None:
    stream = Interruptible()
    response = stream.track(live_urllib3_response([]))
    response.release_conn()  # what NamespaceWatch._watch does when a watch ends
    stream.stop()
    assert stream.stopped.is_set()
