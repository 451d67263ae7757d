"""Pod creates held back in a namespace whose API server refuses what its access review allows.

A kube-apiserver that has just started answers 403 until its authorizer has filled its RBAC
caches, for up to the controller's warm-up window. Trying every queued task's create again on
each scheduler loop meanwhile only earns another 403 (and upstream's traceback for each) per
loop. Holding the namespace's creates back, doubling the hold on each refusal in a row, turns a
storm into a few attempts, while the tasks stay queued (and the namespace watched).
"""

from __future__ import annotations

import time
from collections.abc import Callable

HOLD = (0.5, 4.0)
"""First hold and the longest one, in seconds: the longest stays well inside the warm-up window, so
the first create after the authorizer catches up is at most this late."""


class CreateHolds:
    """Per namespace: until when creates wait, and how long the last hold was.

    Only the scheduler thread uses it (creates are built and their errors handled there), so it
    needs no lock.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._holds: dict[str, tuple[float, float]] = {}

    def hold(self, namespace: str) -> float:
        """A create in ``namespace`` met an unconfirmed refusal: hold the next ones; returns for how long.

        A refusal soon after the last hold ended continues the streak (the hold doubles); one long
        after starts it again.
        """
        now = self._clock()
        until, last = self._holds.get(namespace, (float("-inf"), 0.0))
        streak = now - until < HOLD[1]
        seconds = min(last * 2, HOLD[1]) if streak and last else HOLD[0]
        self._holds[namespace] = (now + seconds, seconds)
        return seconds

    def held_for(self, namespace: str) -> float:
        """Seconds until creates in ``namespace`` may be tried again (0 when they may now)."""
        until, _ = self._holds.get(namespace, (0.0, 0.0))
        return max(0.0, until - self._clock())

    def release(self, namespace: str) -> None:
        """A create in ``namespace`` got an answer: no more holding."""
        self._holds.pop(namespace, None)
