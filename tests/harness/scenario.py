"""What every multi-part test scenario shares: whatever it started is stopped, last first.

A scenario starts a control plane, PostgreSQL, schedulers, a kubelet... one step at a time, and any
step can fail. Each step registers its own undo on ``self._exit`` as soon as it succeeded, so leaving
the ``with`` block (or calling :meth:`stop`) undoes exactly what was done, even after a failed step.
"""

from __future__ import annotations

import contextlib
from types import TracebackType
from typing import Self


class Scenario:
    def __init__(self) -> None:
        self._exit = contextlib.ExitStack()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def stop(self) -> None:
        """Stops what was started, last first; safe to call twice and after a failed step."""
        self._exit.close()
