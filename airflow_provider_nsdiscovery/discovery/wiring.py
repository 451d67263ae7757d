"""The discovery controller wired to a real API server.

The controller itself only knows its seams (contracts.py), so unit tests drive it with fakes;
this is the one place that picks the real namespace watch, access reviewer and RBAC watch.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

from kubernetes import client

from airflow_provider_nsdiscovery.config import DiscoverySettings
from airflow_provider_nsdiscovery.discovery.access import UNKNOWN_IDENTITY, AccessReviewer, who_am_i
from airflow_provider_nsdiscovery.discovery.contracts import DiscoveryCounters, WatchPlan
from airflow_provider_nsdiscovery.discovery.controller import NamespaceDiscovery
from airflow_provider_nsdiscovery.discovery.rbac_watch import RbacWatch
from airflow_provider_nsdiscovery.discovery.source import NamespaceWatch


def _pool_of_its_own(api_client: client.ApiClient) -> client.ApiClient:
    """The same identity and server, another connection pool. Each RBAC watch holds a connection
    for minutes; sharing the reviewers' pool (10 connections on 2 cores by default) would leave
    it full, and urllib3 then discards connections, so reviews pay a new TLS handshake each."""
    own = client.ApiClient(copy.deepcopy(api_client.configuration))
    own.default_headers.update(api_client.default_headers)
    return own


def connect(
    settings: DiscoverySettings,
    api_client: client.ApiClient,
    *,
    on_change: Callable[[WatchPlan], None] = lambda plan: None,
    identity: str | None = None,
    watch_access: bool = True,
) -> NamespaceDiscovery:
    """``watch_access=False`` skips the RBAC watches, for one-shot answers such as the CLI's."""
    counters = DiscoveryCounters()

    def count(kind: str) -> None:
        counters.requests[kind] += 1

    reviewer = AccessReviewer(api_client, on_request=count)

    def rbac_watch(changed: Callable[[str | None, str], None]) -> RbacWatch:
        return RbacWatch(
            _pool_of_its_own(api_client),
            changed,
            lambda: reviewer.identity if reviewer.identity != UNKNOWN_IDENTITY else None,
            retry_refused_after=settings.access_recheck_interval,
            on_request=count,
        )

    return NamespaceDiscovery(
        settings,
        lambda snap, event, opened: NamespaceWatch(
            api_client, settings.label_selector, snap, event, on_request=count, on_open=opened
        ),
        reviewer,
        on_change=on_change,
        identify=(lambda: identity) if identity else (lambda: who_am_i(api_client)),
        counters=counters,
        access_watch=rbac_watch if watch_access else None,
    )
