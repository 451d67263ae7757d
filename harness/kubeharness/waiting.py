"""Polling for eventually-true conditions: the API server and test threads are asynchronous."""

from __future__ import annotations

import time
from collections.abc import Callable


def wait_until(
    condition: Callable[[], object], what: str, *, timeout: float = 10.0, interval: float = 0.02
) -> None:
    """Return once ``condition()`` is truthy; raise TimeoutError naming ``what`` after ``timeout`` s.

    Deadlines are generous on purpose: tests assert that things happen, the benchmarks measure
    how fast.
    """
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for: {what}")
        time.sleep(interval)
