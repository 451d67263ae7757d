"""Upstream's pod watcher loop, run on a thread instead of in a process of its own.

The cncf-kubernetes KubernetesJobWatcher is a ``multiprocessing.Process`` per namespace: fine for
three namespaces, a few GiB of RSS for hundreds. Its event handling (pod phase -> task state,
failure details, adoption) is exactly what we want, so we reuse it unchanged and only replace the
vehicle: a thread that runs the watcher's own ``_run`` loop with a client whose open watch
response can be shut down, so stopping a namespace's watcher takes effect at once.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable
from http import HTTPStatus
from typing import Any

from airflow.providers.cncf.kubernetes.executors.kubernetes_executor_utils import KubernetesJobWatcher
from kubernetes import client
from urllib3.exceptions import ReadTimeoutError

from airflow_provider_nsdiscovery.loops import LoopHealth, run_supervised
from airflow_provider_nsdiscovery.streaming import Backoff, Interruptible

log = logging.getLogger(__name__)


class _InterruptibleCoreV1:
    """CoreV1Api stand-in that remembers each watch response so :class:`Interruptible` can end it.

    The kubernetes ``Watch`` reads the wrapped method's docstring to decide how to deserialise
    events, hence ``functools.wraps``.
    """

    def __init__(self, api: client.CoreV1Api, stream: Interruptible, on_open: Callable[[], None]) -> None:
        self._api = api
        self.list_namespaced_pod = self._tracked(api.list_namespaced_pod, stream, on_open)
        self.list_pod_for_all_namespaces = self._tracked(api.list_pod_for_all_namespaces, stream, on_open)

    @staticmethod
    def _tracked(
        method: Callable[..., Any], stream: Interruptible, on_open: Callable[[], None]
    ) -> Callable[..., Any]:
        @functools.wraps(method)
        def tracked(*args: Any, **kwargs: Any) -> Any:
            response = stream.track(method(*args, **kwargs))
            on_open()  # the API server answered: the watch is open
            return response

        return tracked

    def __getattr__(self, name: str) -> Any:
        return getattr(self._api, name)


class ThreadedPodWatcher(threading.Thread):
    """Watches one namespace's executor pods; behaves like a watcher process to upstream code.

    The thread is supervised: no exception ends it, only :meth:`terminate`. A 403 tells
    ``on_forbidden`` at once (the namespace's access decision is stale and is re-reviewed, which
    decides whether this watcher is still wanted) and the watch is retried with backoff meanwhile.
    """

    def __init__(
        self,
        job_watcher: KubernetesJobWatcher,
        api: client.CoreV1Api,
        on_forbidden: Callable[[str, str], None],
        gate: threading.Event | None = None,
        on_end: Callable[[ThreadedPodWatcher], None] = lambda watcher: None,
    ) -> None:
        super().__init__(name=f"nsd-pod-watcher-{job_watcher.namespace}", daemon=True)
        self._job_watcher = job_watcher
        self._stream = Interruptible()
        self.health = LoopHealth(self.name)
        self._api = _InterruptibleCoreV1(api, self._stream, self.health.progressed)
        self._on_forbidden = on_forbidden
        self._gate = gate
        self._on_end = on_end

    @property
    def namespace(self) -> str:
        return str(self._job_watcher.namespace)

    def run(self) -> None:
        try:
            if self._gate is not None:
                self._gate.wait()  # opened once every watcher of the same reconcile has started
            run_supervised(self.health, self._watch_once, self._stream.stopped, Backoff(initial=0.5))
        finally:
            self._on_end(self)  # the scheduler's health check restarts it, unless it was stopped

    def _watch_once(self) -> None:
        watcher = self._job_watcher
        try:
            watcher.resource_version = watcher._run(
                self._api, watcher.resource_version, watcher.scheduler_job_id, watcher.kube_config
            )
        except ReadTimeoutError:
            return  # a quiet namespace; upstream restarts the watch the same way
        except Exception as err:
            if self._stream.stopped.is_set():
                return
            # "0" re-lists from the server's cache: events missed while disconnected come back as ADDED.
            watcher.resource_version = "0"
            if isinstance(err, client.ApiException) and err.status == HTTPStatus.FORBIDDEN:
                self._on_forbidden(self.namespace, f"watching pods was refused: {err.reason}")
            raise

    def terminate(self) -> None:
        self._stream.stop()

    def kill(self) -> None:
        self._stream.stop()
