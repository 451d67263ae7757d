"""The namespace state table: the published status of every namespace the provider knows.

Written only by the controller's reconcile, read by the scheduler loop, validation, metrics and
the CLI; reads return immutable snapshots instead of handing out the dict.
"""

from __future__ import annotations

import threading

from airflow_provider_nsdiscovery.discovery.status import NamespaceStatus


class StateTable:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rows: dict[str, NamespaceStatus] = {}
        # The watched names, kept as rows change: every publish asks for them (the watch plan),
        # and deriving them from all rows each time made a start with N namespaces cost O(N^2)
        # (at N=1000, ~10% of the executor's CPU until all watches were open).
        self._watched: set[str] = set()
        self._watched_frozen: frozenset[str] | None = frozenset()

    def get(self, name: str) -> NamespaceStatus | None:
        with self._lock:
            return self._rows.get(name)

    def put(self, status: NamespaceStatus) -> NamespaceStatus | None:
        """Store ``status``; returns the status it replaced."""
        with self._lock:
            previous = self._rows.get(status.name)
            self._rows[status.name] = status
            if status.watched != (previous is not None and previous.watched):
                if status.watched:
                    self._watched.add(status.name)
                else:
                    self._watched.discard(status.name)
                self._watched_frozen = None
            return previous

    def snapshot(self) -> dict[str, NamespaceStatus]:
        with self._lock:
            return dict(self._rows)

    def watched(self) -> frozenset[str]:
        with self._lock:
            if self._watched_frozen is None:
                self._watched_frozen = frozenset(self._watched)
            return self._watched_frozen
