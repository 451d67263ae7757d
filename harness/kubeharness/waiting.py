"""Polling for eventually-true conditions: the API server, child processes and test threads are
asynchronous, so tests wait on what they can observe, never on a fixed sleep."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

_T = TypeVar("_T")


def wait_until(
    condition: Callable[[], _T | None],
    what: str,
    *,
    timeout: float = 10.0,
    interval: float = 0.02,
    check: Callable[[], None] | None = None,
) -> _T:
    """Return ``condition()``'s first truthy value; raise TimeoutError naming ``what`` after
    ``timeout`` s. ``check`` runs before each try and may raise at once (a child process that
    died) instead of letting the wait run out.

    Deadlines are generous on purpose: tests assert that things happen, the benchmarks measure
    how fast.
    """
    deadline = time.monotonic() + timeout
    while True:
        if check is not None:
            check()
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for: {what}")
        time.sleep(interval)
