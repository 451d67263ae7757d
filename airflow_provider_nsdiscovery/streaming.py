"""Small pieces every long-running Kubernetes stream here needs: prompt interruption and backoff.

A watch blocks in a socket read for minutes; stopping a namespace's watcher (or the whole
executor) must not wait for the next event, so the open response is kept and shut down from the
stopping thread. Reconnects back off exponentially with jitter so an API server outage does not
turn N watchers into a busy loop.
"""

from __future__ import annotations

import contextlib
import random
import threading
from typing import Any


class Interruptible:
    """Holds the HTTP response a stream is reading so another thread can end the read at once."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._response: Any = None
        self.stopped = threading.Event()

    def track(self, response: Any) -> Any:
        with self._lock:
            self._response = response
        if self.stopped.is_set():
            self._shutdown(response)
        return response

    def stop(self) -> None:
        self.stopped.set()
        with self._lock:
            response = self._response
        if response is not None:
            self._shutdown(response)

    @staticmethod
    def _shutdown(response: Any) -> None:
        # urllib3 >= 2.3 can shut the socket down under a blocked reader; close() alone may not wake it.
        # ValueError / RuntimeError: urllib3 refuses to shut down a response that is already closed
        # or released to its pool; there is nothing left to interrupt then.
        with contextlib.suppress(OSError, ValueError, RuntimeError):
            shutdown = getattr(response, "shutdown", None)
            if shutdown is not None:
                shutdown()
        with contextlib.suppress(OSError, ValueError, RuntimeError):
            response.close()


class Backoff:
    """Exponential backoff with full jitter, reset after a success."""

    def __init__(self, initial: float = 0.2, maximum: float = 30.0) -> None:
        self.initial = initial
        self.maximum = maximum
        self._attempt = 0

    def reset(self) -> None:
        self._attempt = 0

    def next_delay(self) -> float:
        ceiling = min(self.maximum, self.initial * (2**self._attempt))
        if ceiling < self.maximum:  # stop counting once capped: 2**attempt must stay a float
            self._attempt += 1
        return random.uniform(ceiling / 2, ceiling)
