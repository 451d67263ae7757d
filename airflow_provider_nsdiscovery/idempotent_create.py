"""Pod creates that can be repeated without running a task twice.

A create that times out, or whose connection breaks before the answer, may or may not have made
the pod. Retrying it under a fresh name (what a plain retry does, since pod names carry a random
suffix) can leave two pods running one task try; failing the task can leave a pod running for a
task Airflow thinks is over. Retrying under the same name is safe either way: the API server
answers 409 AlreadyExists if the first create went through, and that answer is the success the
first attempt never heard.
"""

from __future__ import annotations

from collections.abc import Hashable


class UnansweredCreates:
    """The pod name each task's next create must use.

    Only the scheduler thread uses it (both of upstream's creation paths build and report there),
    so it needs no lock.
    """

    def __init__(self) -> None:
        self._trying: dict[Hashable, str] = {}
        self._unanswered: dict[Hashable, str] = {}

    def name(self, key: Hashable, built: str) -> str:
        """The name to create ``key``'s pod under: the unanswered one if there is one, else ``built``."""
        name = self._unanswered.get(key, built)
        self._trying[key] = name
        return name

    def unanswered(self, key: Hashable) -> None:
        """The create being tried for ``key`` got no answer: the next one reuses its name."""
        if key in self._trying:
            self._unanswered[key] = self._trying.pop(key)

    def pending(self, key: Hashable) -> str | None:
        """The pod that may exist for ``key`` although no create for it was answered."""
        return self._unanswered.get(key)

    def answered(self, key: Hashable) -> None:
        """A create for ``key`` got a definite answer (made, or surely not made): forget the name."""
        self._trying.pop(key, None)
        self._unanswered.pop(key, None)
