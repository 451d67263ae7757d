"""A stand-in for the kubelet: runs task pods as local processes, for end-to-end tests and the demo.

The control plane has no nodes, so an executor's pods would stay Pending forever. This class
plays the node: it watches pods labelled ``kubernetes_executor=True`` that are not bound to a
node, runs the main container's ``command`` + ``args`` as a local subprocess with the
container's ``env`` (on top of a base environment that points the process at the local
Airflow), and reports ``Running`` and then ``Succeeded``/``Failed`` with the exit code through
the pod status subresource, as a kubelet would. Each process's output goes to a log file per
pod, and a pod that is deleted has its process killed.

It is deliberately small: no images, volumes, probes, restarts or resource limits; only the
downward API fields a pod template commonly maps into env (``metadata.name``,
``metadata.namespace``, ...). Not part of the package.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import urllib3
from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException

from kubeharness import Cluster, die_with_parent
from tests.harness.executor_pods import CONTAINER_NAME

log = logging.getLogger(__name__)

EXECUTOR_POD_SELECTOR = "kubernetes_executor=True"
"""The label the KubernetesExecutor puts on every task pod."""

WATCH_TIMEOUT_SECONDS = 2
"""Server-side watch timeout: also how long stop() may wait for a watch thread to notice."""


@dataclass
class PodRun:
    """One pod as this stand-in ran it."""

    namespace: str
    name: str
    uid: str
    log_path: Path
    annotations: dict[str, str] = field(default_factory=dict)
    argv: list[str] = field(default_factory=list)
    started_at: float | None = None
    finished_at: float | None = None
    exit_code: int | None = None
    deleted: bool = False
    kill_requested_at: float | None = None
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def done(self) -> bool:
        return self.finished_at is not None


def _fieldref_value(pod: client.V1Pod, path: str) -> str | None:
    """The downward-API fields a pod template may map into env."""
    meta = pod.metadata
    simple: dict[str, str | None] = {
        "metadata.name": meta.name,
        "metadata.namespace": meta.namespace,
        "metadata.uid": meta.uid,
        "spec.serviceAccountName": pod.spec.service_account_name,
        "spec.nodeName": pod.spec.node_name or "local-kubelet",
        "status.podIP": "127.0.0.1",
        "status.hostIP": "127.0.0.1",
    }
    if path in simple:
        return simple[path]
    for prefix, source in (("metadata.labels", meta.labels), ("metadata.annotations", meta.annotations)):
        if path.startswith(f"{prefix}['") and path.endswith("']"):
            value = (source or {}).get(path[len(prefix) + 2 : -2])
            return None if value is None else str(value)
    return None


class PodWatch(threading.Thread):
    """List, then watch, pods (in one namespace or all) and hand each event to ``on_event``.

    Informer-style: pods found by the first list (and by a re-list after the watch expired) are
    reported as ``ADDED``. ``synced`` is set once the first list is done, so a caller knows that
    every later change will be seen.
    """

    def __init__(
        self,
        api_client: client.ApiClient,
        on_event: Callable[[str, client.V1Pod], None],
        *,
        namespace: str | None = None,
        label_selector: str | None = None,
    ) -> None:
        super().__init__(name=f"pod-watch-{namespace or 'all'}", daemon=True)
        self._api = client.CoreV1Api(api_client)
        self._on_event = on_event
        self.namespace = namespace
        self.label_selector = label_selector
        self.synced = threading.Event()
        self._stopped = threading.Event()

    def start_and_sync(self, timeout: float = 30.0) -> PodWatch:
        self.start()
        if not self.synced.wait(timeout):
            self.stop()
            raise TimeoutError(f"pod watch ({self.namespace or 'all namespaces'}) could not list pods")
        return self

    def stop(self) -> None:
        """Returns within about WATCH_TIMEOUT_SECONDS: the open watch ends by itself."""
        self._stopped.set()
        if self.is_alive() and self is not threading.current_thread():
            self.join(timeout=WATCH_TIMEOUT_SECONDS + 10)

    def run(self) -> None:
        if self.namespace is None:
            list_call: Callable[..., Any] = self._api.list_pod_for_all_namespaces
            args: tuple[str, ...] = ()
        else:
            list_call, args = self._api.list_namespaced_pod, (self.namespace,)
        selector = {"label_selector": self.label_selector} if self.label_selector else {}
        where = self.namespace or "all namespaces"
        resource_version: str | None = None
        delay = 0.2
        while not self._stopped.is_set():
            try:
                if resource_version is None:
                    listing = list_call(*args, **selector)
                    for pod in listing.items:
                        self._on_event("ADDED", pod)
                    resource_version = listing.metadata.resource_version
                    self.synced.set()
                stream: Iterator[dict[str, Any]] = watch.Watch().stream(
                    list_call,
                    *args,
                    **selector,
                    resource_version=resource_version,
                    timeout_seconds=WATCH_TIMEOUT_SECONDS,
                    allow_watch_bookmarks=True,
                    _request_timeout=WATCH_TIMEOUT_SECONDS + 10,
                )
                for event in stream:
                    pod = event["object"]
                    resource_version = pod.metadata.resource_version
                    if event["type"] != "BOOKMARK":
                        self._on_event(event["type"], pod)
                    if self._stopped.is_set():
                        break
                delay = 0.2
            except ApiException as err:
                if err.status == 410:  # the watch expired: list again
                    resource_version = None
                    continue
                log.warning("pod watch (%s) failed: %s", where, err.reason)
                self._stopped.wait(delay)
                delay = min(delay * 2, 5.0)
            except (urllib3.exceptions.HTTPError, OSError) as err:
                if self._stopped.is_set():
                    return
                log.warning("pod watch (%s) failed: %r", where, err)
                self._stopped.wait(delay)
                delay = min(delay * 2, 5.0)


class Kubelet:
    """Runs executor pods as local processes; use as a context manager or start()/stop().

    ``namespaces`` None watches all namespaces with one watch, otherwise one watch per
    namespace. At most ``max_pods`` processes run at once; further pods stay Pending until a
    slot frees, like a full node.
    """

    def __init__(
        self,
        cluster: Cluster,
        *,
        base_env: Mapping[str, str],
        log_dir: Path,
        namespaces: Sequence[str] | None = None,
        max_pods: int = 4,
        python: str = sys.executable,
        kill_grace: float = 5.0,
        label_selector: str = EXECUTOR_POD_SELECTOR,
    ) -> None:
        self.cluster = cluster
        self.base_env = dict(base_env)
        self.log_dir = Path(log_dir)
        self.namespaces = list(namespaces) if namespaces is not None else None
        self.python = python
        self.kill_grace = kill_grace
        self.label_selector = label_selector
        self._pool = ThreadPoolExecutor(max_pods, thread_name_prefix="kubelet-pod")
        self._api_client = cluster.admin_api_client()
        self._stopped = threading.Event()
        self._lock = threading.Lock()
        self._runs: dict[str, PodRun] = {}
        self._watches: list[PodWatch] = []

    # lifecycle ---------------------------------------------------------------------------------

    def start(self) -> Kubelet:
        """Returns once every watch has listed the pods that exist already."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        targets: list[str | None] = list(self.namespaces) if self.namespaces is not None else [None]
        for namespace in targets:
            pod_watch = PodWatch(
                self._api_client, self._on_event, namespace=namespace, label_selector=self.label_selector
            )
            self._watches.append(pod_watch)
            pod_watch.start_and_sync()
        return self

    def stop(self) -> None:
        """Stop watching, kill every process still running and wait for the runner threads."""
        self._stopped.set()
        with self._lock:
            runs = list(self._runs.values())
        for run in runs:
            self._kill(run)
        for pod_watch in self._watches:
            pod_watch.stop()
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._api_client.close()

    def __enter__(self) -> Kubelet:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # queries -----------------------------------------------------------------------------------

    def runs(self) -> list[PodRun]:
        with self._lock:
            return list(self._runs.values())

    def _on_event(self, kind: str, pod: client.V1Pod) -> None:
        uid = pod.metadata.uid
        if kind == "DELETED" or pod.metadata.deletion_timestamp is not None:
            with self._lock:  # under the lock: _run_pod checks `deleted` and starts the process under it
                run = self._runs.get(uid)
                if run is not None:
                    run.deleted = True
            if run is not None:
                self._kill(run)
            return
        if pod.spec.node_name or (pod.status and pod.status.phase not in (None, "Pending")):
            return
        with self._lock:
            if uid in self._runs or self._stopped.is_set():
                return
            run = PodRun(
                namespace=pod.metadata.namespace,
                name=pod.metadata.name,
                uid=uid,
                log_path=self.log_dir / pod.metadata.namespace / f"{pod.metadata.name}.log",
                annotations=dict(pod.metadata.annotations or {}),
            )
            self._runs[uid] = run
        with contextlib.suppress(RuntimeError):  # the pool is shut down while stopping
            self._pool.submit(self._run_pod, run, pod)

    # running -----------------------------------------------------------------------------------

    def _environment(self, pod: client.V1Pod, container: client.V1Container) -> dict[str, str]:
        env = dict(self.base_env)
        # `python` in the pod's command must be the interpreter that has this Airflow installed.
        env["PATH"] = os.pathsep.join([str(Path(self.python).parent), env.get("PATH", os.defpath)])
        env["HOSTNAME"] = pod.metadata.name
        for var in container.env or []:
            if var.value is not None:
                env[var.name] = var.value
            elif var.value_from is not None and var.value_from.field_ref is not None:
                value = _fieldref_value(pod, var.value_from.field_ref.field_path)
                if value is not None:
                    env[var.name] = value
            else:
                env.setdefault(var.name, "")
        return env

    def _run_pod(self, run: PodRun, pod: client.V1Pod) -> None:
        container = next((c for c in pod.spec.containers if c.name == CONTAINER_NAME), pod.spec.containers[0])
        run.argv = list(container.command or []) + list(container.args or [])
        run.log_path.parent.mkdir(parents=True, exist_ok=True)
        workdir = self.log_dir / ".workdirs" / run.namespace / run.name
        workdir.mkdir(parents=True, exist_ok=True)
        with self._lock:
            if run.deleted or self._stopped.is_set():
                run.finished_at = time.time()  # never started
                return
            with run.log_path.open("ab") as output:
                try:
                    run.process = subprocess.Popen(
                        run.argv,
                        env=self._environment(pod, container),
                        cwd=workdir,  # a container's workingDir names a path in its image, not here
                        stdin=subprocess.DEVNULL,
                        stdout=output,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,  # its own group, so a kill reaches the task's children
                        preexec_fn=die_with_parent,  # noqa: PLW1509 - only prctl(2)
                    )
                except OSError as err:
                    output.write(f"kubelet: cannot start {run.argv[:1]}: {err}\n".encode())
                    run.process = None
            run.started_at = time.time()
        if run.process is None:
            self._report(run, 127)
            return
        self._set_phase(run, "Running")
        code = self._wait(run, run.process)
        run.exit_code = code
        run.finished_at = time.time()
        if not run.deleted and not self._stopped.is_set():
            self._report(run, code)

    def _wait(self, run: PodRun, process: subprocess.Popen[bytes]) -> int:
        """Wait for the process; a kill that SIGTERM did not finish within the grace becomes SIGKILL."""
        while True:
            try:
                code = process.wait(timeout=0.5)
            except subprocess.TimeoutExpired:
                requested = run.kill_requested_at
                if requested is not None and time.monotonic() - requested > self.kill_grace:
                    self._signal(process, signal.SIGKILL)
                continue
            # A shell reports death by signal N as 128 + N, and so does a container runtime.
            return code if code >= 0 else 128 - code

    def _report(self, run: PodRun, code: int) -> None:
        run.exit_code = code
        run.finished_at = run.finished_at or time.time()
        self._set_phase(run, "Succeeded" if code == 0 else "Failed", exit_code=code)

    def _set_phase(self, run: PodRun, phase: Any, exit_code: int | None = None) -> None:
        try:
            self.cluster.set_pod_phase(run.namespace, run.name, phase, exit_code=exit_code)
        except ApiException as err:
            if err.status == 404:  # deleted meanwhile: the process is being killed by the watch
                run.deleted = True
                self._kill(run)
                return
            log.warning("kubelet: cannot set %s/%s to %s: %s", run.namespace, run.name, phase, err.reason)
        except (urllib3.exceptions.HTTPError, OSError) as err:
            log.warning("kubelet: cannot set %s/%s to %s: %r", run.namespace, run.name, phase, err)

    def _kill(self, run: PodRun) -> None:
        process = run.process
        if process is None or process.poll() is not None:
            return
        if run.kill_requested_at is None:
            run.kill_requested_at = time.monotonic()
            self._signal(process, signal.SIGTERM)

    @staticmethod
    def _signal(process: subprocess.Popen[bytes], signum: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signum)
