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

    def get(self, name: str) -> NamespaceStatus | None:
        with self._lock:
            return self._rows.get(name)

    def put(self, status: NamespaceStatus) -> NamespaceStatus | None:
        """Store ``status``; returns the status it replaced."""
        with self._lock:
            previous = self._rows.get(status.name)
            self._rows[status.name] = status
            return previous

    def snapshot(self) -> dict[str, NamespaceStatus]:
        with self._lock:
            return dict(self._rows)

    def watched(self) -> frozenset[str]:
        with self._lock:
            return frozenset(name for name, status in self._rows.items() if status.watched)
