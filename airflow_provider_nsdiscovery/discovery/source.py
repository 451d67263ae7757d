"""Where candidate namespaces come from: a label-selector list+watch, or a configured list.

The watch is the usual Kubernetes reflector loop: list to get a consistent snapshot and its
resourceVersion, watch from there with bookmarks (so a quiet watch still advances its
resourceVersion), re-list when the server answers 410 Gone; the supervised loop that calls it
reconnects with backoff on errors.
Objects are read as raw JSON: only name, labels and deletion state matter, and skipping model
deserialisation keeps a 1000-namespace list cheap.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Callable, Mapping
from http import HTTPStatus
from typing import Any

from kubernetes import client
from kubernetes.watch.watch import iter_resp_lines

from airflow_provider_nsdiscovery.discovery.status import Observation
from airflow_provider_nsdiscovery.discovery.tenancy import TenantPolicy
from airflow_provider_nsdiscovery.streaming import Interruptible

log = logging.getLogger(__name__)

WATCH_TIMEOUT_SECONDS = 300
REQUEST_TIMEOUT = 10
"""Seconds any single request may take: a frozen API server must not hold a thread forever."""


def observation_from(obj: Mapping[str, Any]) -> Observation:
    metadata = obj.get("metadata") or {}
    phase = (obj.get("status") or {}).get("phase")
    return Observation(
        exists=True,
        labels=dict(metadata.get("labels") or {}),
        terminating=bool(metadata.get("deletionTimestamp")) or phase == "Terminating",
        tenancy=TenantPolicy.from_annotations(metadata.get("annotations") or {}),
    )


def read_namespace(core: client.CoreV1Api, name: str) -> Observation | None:
    """The namespace as it is now; ``exists=False`` when it is gone, None when we may not read it."""
    try:
        response = core.read_namespace(name, _preload_content=False, _request_timeout=REQUEST_TIMEOUT)
    except client.ApiException as err:
        if err.status == HTTPStatus.NOT_FOUND:
            return Observation(exists=False)
        if err.status == HTTPStatus.FORBIDDEN:
            return None
        raise
    return observation_from(json.loads(response.data))


class ListForbiddenError(Exception):
    """The identity may not list namespaces cluster-wide; the controller decides what follows."""


class Reflector:
    """The reflector loop of one kind of object, one list-then-watch cycle per :meth:`sync_once`.

    ``lister`` is a client list call (``list_namespace``, ``list_role_binding_for_all_namespaces``,
    ...) with its filters bound. ``on_snapshot`` gets every object after each (re-)list, so the
    consumer can forget what vanished while the watch was down; ``on_event`` gets ``(type, object)``
    for ADDED, MODIFIED and DELETED. Errors are raised, never swallowed (the loop around it retries
    with backoff), and the resourceVersion only moves past an event once its handler has returned,
    so an event is never lost to a handler that failed. A 410 Gone only forces a re-list.
    """

    def __init__(
        self,
        what: str,
        lister: Callable[..., Any],
        on_snapshot: Callable[[list[dict[str, Any]]], None],
        on_event: Callable[[str, dict[str, Any]], None],
        *,
        on_request: Callable[[str], None] = lambda kind: None,
        on_open: Callable[[], None] = lambda: None,
    ) -> None:
        self.what = what
        self._lister = lister
        self._on_snapshot = on_snapshot
        self._on_event = on_event
        self._on_request = on_request
        self._on_open = on_open
        self._stream = Interruptible()
        self.resource_version: str | None = None

    @property
    def listed(self) -> bool:
        return self.resource_version is not None

    def stop(self) -> None:
        self._stream.stop()

    def sync_once(self) -> None:
        try:
            if self.resource_version is None:
                self._list()
            self._watch()
        except client.ApiException as err:
            if err.status != HTTPStatus.GONE:
                raise
            log.info("%s watch expired (410 Gone); re-listing", self.what)
            self.resource_version = None

    def _list(self) -> None:
        self._on_request(f"list {self.what}")
        response = self._lister(_preload_content=False, _request_timeout=REQUEST_TIMEOUT)
        body = json.loads(response.data)
        self._on_snapshot(list(body.get("items") or []))
        self.resource_version = body["metadata"]["resourceVersion"]
        self._on_open()

    def _watch(self) -> None:
        self._on_request(f"watch {self.what}")
        response = self._stream.track(
            self._lister(
                watch=True,
                allow_watch_bookmarks=True,
                resource_version=self.resource_version,
                timeout_seconds=WATCH_TIMEOUT_SECONDS,
                _preload_content=False,
                _request_timeout=(REQUEST_TIMEOUT, WATCH_TIMEOUT_SECONDS + 30),
            )
        )
        self._on_open()
        try:
            for line in iter_resp_lines(response):
                if not line:
                    continue
                event = json.loads(line)
                kind, obj = event["type"], event["object"]
                if kind == "ERROR":
                    raise client.ApiException(status=obj.get("code"), reason=obj.get("message"))
                if kind != "BOOKMARK":
                    self._on_event(kind, obj)
                self.resource_version = obj["metadata"]["resourceVersion"]
        finally:
            response.release_conn()


class NamespaceWatch:
    """The namespaces matching one selector, as a :class:`Reflector` of namespaces.

    A DELETED event from a selector watch means "no longer matches", which is either deletion or
    a removed label; the consumer tells them apart with :meth:`read`.
    """

    def __init__(
        self,
        api_client: client.ApiClient,
        label_selector: str,
        on_snapshot: Callable[[dict[str, Observation]], None],
        on_event: Callable[[str, str, Observation], None],
        *,
        on_request: Callable[[str], None] = lambda kind: None,
        on_open: Callable[[], None] = lambda: None,
    ) -> None:
        self._core = client.CoreV1Api(api_client)
        self._on_request = on_request
        self._reflector = Reflector(
            "namespaces",
            functools.partial(self._core.list_namespace, label_selector=label_selector),
            lambda items: on_snapshot({item["metadata"]["name"]: observation_from(item) for item in items}),
            lambda kind, obj: on_event(kind, obj["metadata"]["name"], observation_from(obj)),
            on_request=on_request,
            on_open=on_open,
        )

    @property
    def listed(self) -> bool:
        return self._reflector.listed

    def stop(self) -> None:
        self._reflector.stop()

    def read(self, name: str) -> Observation | None:
        self._on_request("get namespace")
        return read_namespace(self._core, name)

    def sync_once(self) -> None:
        """List if needed, then follow the watch until the server ends it.

        Raises :class:`ListForbiddenError` on a 403 to the list.
        """
        try:
            self._reflector.sync_once()
        except client.ApiException as err:
            if err.status == HTTPStatus.FORBIDDEN:
                raise ListForbiddenError(f"{err.status} {err.reason}") from err
            raise
