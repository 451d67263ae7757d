"""Which of the executor's tasks are placed in which namespace.

Draining is decided from this map, not from a pod LIST: the executor knows what it launched and
adopted, a LIST can fail (429, 5xx) exactly when it matters, and a count taken from it misses a
pod created while it runs. The controller publishes "no new tasks" *before* it counts; the
executor records a task and *then* reads the table once more before it creates the pod. So a
pod is either counted, or not created in this loop.

A task whose pod's watcher has seen it end (``finished``) no longer counts: its result is in
upstream's watcher queue by then, which the scheduler reads whether or not the watcher still
runs, so a draining namespace may stop its watcher at once instead of a scheduler loop later.
It stays in the map (its namespace still tells which pod may report it) until ``remove``.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)


class TaskPlacement(Generic[K]):
    """Thread-safe task -> namespace map; ``on_change(namespace)`` hears of every count change."""

    def __init__(self, on_change: Callable[[str], None] = lambda namespace: None) -> None:
        self._lock = threading.Lock()
        self._where: dict[K, str] = {}
        self._counts: Counter[str] = Counter()
        self._finished: set[K] = set()
        self.on_change = on_change

    def place(self, task: K, namespace: str) -> None:
        with self._lock:
            before = self._where.get(task)
            if before == namespace and task not in self._finished:
                return
            if before is not None and task not in self._finished:
                self._drop_locked(before)
            self._finished.discard(task)
            self._where[task] = namespace
            self._counts[namespace] += 1
        if before is not None and before != namespace:
            self.on_change(before)
        self.on_change(namespace)

    def finished(self, task: K, namespace: str) -> bool:
        """The task's pod in ``namespace`` was seen ending: it stops counting now; ``remove`` takes it
        out later.

        Called from a pod watcher's thread, so it only records. A task not placed (a pod of an
        earlier scheduler, a result already taken out), already finished, or placed elsewhere (a
        pod claiming another namespace's task, whose result the executor ignores) changes nothing.
        """
        with self._lock:
            if self._where.get(task) != namespace or task in self._finished:
                return False
            self._finished.add(task)
            self._drop_locked(namespace)
        self.on_change(namespace)
        return True

    def is_finished(self, task: K) -> bool:
        with self._lock:
            return task in self._finished

    def remove(self, task: K) -> str | None:
        with self._lock:
            namespace = self._where.pop(task, None)
            counted = task not in self._finished
            self._finished.discard(task)
            if namespace is not None and counted:
                self._drop_locked(namespace)
        if namespace is not None and counted:
            self.on_change(namespace)
        return namespace

    def namespace_of(self, task: K) -> str | None:
        with self._lock:
            return self._where.get(task)

    def count(self, namespace: str) -> int:
        with self._lock:
            return self._counts[namespace]

    def has_tasks(self, namespace: str) -> bool:
        with self._lock:
            return namespace in self._counts

    def items(self) -> list[tuple[K, str]]:
        with self._lock:
            return list(self._where.items())

    def _drop_locked(self, namespace: str) -> None:
        self._counts[namespace] -= 1
        if self._counts[namespace] <= 0:
            del self._counts[namespace]
