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
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import urllib3
from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException

from tests.harness.controlplane import CONTAINER_NAME, Cluster, _die_with_parent

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
    simple = {
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
            return (source or {}).get(path[len(prefix) + 2 : -2])
    return None


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
        self._threads: list[threading.Thread] = []

    # lifecycle ---------------------------------------------------------------------------------

    def start(self) -> Kubelet:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        targets: list[str | None] = list(self.namespaces) if self.namespaces is not None else [None]
        for namespace in targets:
            thread = threading.Thread(
                target=self._watch_loop, args=(namespace,), name=f"kubelet-watch-{namespace or 'all'}",
                daemon=True,
            )
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        """Stop watching, kill every process still running and wait for the runner threads."""
        self._stopped.set()
        with self._lock:
            runs = list(self._runs.values())
        for run in runs:
            self._kill(run)
        for thread in self._threads:
            thread.join(timeout=WATCH_TIMEOUT_SECONDS + 10)
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

    # watching ----------------------------------------------------------------------------------

    def _list(self, api: client.CoreV1Api, namespace: str | None, **kwargs: Any) -> Any:
        if namespace is None:
            return api.list_pod_for_all_namespaces(label_selector=self.label_selector, **kwargs)
        return api.list_namespaced_pod(namespace, label_selector=self.label_selector, **kwargs)

    def _watch_loop(self, namespace: str | None) -> None:
        api = client.CoreV1Api(self._api_client)
        resource_version: str | None = None
        delay = 0.2
        while not self._stopped.is_set():
            try:
                if resource_version is None:
                    listing = self._list(api, namespace)
                    for pod in listing.items:
                        self._on_event("ADDED", pod)
                    resource_version = listing.metadata.resource_version
                if namespace is None:
                    list_call, args = api.list_pod_for_all_namespaces, ()
                else:
                    list_call, args = api.list_namespaced_pod, (namespace,)
                stream: Iterator[dict[str, Any]] = watch.Watch().stream(
                    list_call,
                    *args,
                    label_selector=self.label_selector,
                    resource_version=resource_version,
                    timeout_seconds=WATCH_TIMEOUT_SECONDS,
                    allow_watch_bookmarks=True,
                    _request_timeout=WATCH_TIMEOUT_SECONDS + 10,
                )
                for event in stream:
                    if event["type"] == "ERROR":
                        resource_version = None  # 410 Gone: list again
                        break
                    pod = event["object"]
                    resource_version = pod.metadata.resource_version
                    if event["type"] != "BOOKMARK":
                        self._on_event(event["type"], pod)
                    if self._stopped.is_set():
                        break
                delay = 0.2
            except ApiException as err:
                if err.status == 410:
                    resource_version = None
                    continue
                log.warning("kubelet watch (%s) failed: %s", namespace or "all namespaces", err.reason)
                self._stopped.wait(delay)
                delay = min(delay * 2, 5.0)
            except (urllib3.exceptions.HTTPError, OSError) as err:
                if self._stopped.is_set():
                    return
                log.warning("kubelet watch (%s) failed: %r", namespace or "all namespaces", err)
                self._stopped.wait(delay)
                delay = min(delay * 2, 5.0)

    def _on_event(self, kind: str, pod: client.V1Pod) -> None:
        uid = pod.metadata.uid
        if kind == "DELETED" or pod.metadata.deletion_timestamp is not None:
            with self._lock:
                run = self._runs.get(uid)
            if run is not None:
                run.deleted = True
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
            )
            self._runs[uid] = run
        try:
            self._pool.submit(self._run_pod, run, pod)
        except RuntimeError:  # pool shut down while stopping
            pass

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
        workdir = self.log_dir / run.namespace / f"{run.name}.workdir"
        workdir.mkdir(parents=True, exist_ok=True)
        with self._lock:
            if run.deleted or self._stopped.is_set():
                return
            with run.log_path.open("ab") as output:
                try:
                    run.process = subprocess.Popen(
                        run.argv,
                        env=self._environment(pod, container),
                        cwd=container.working_dir or workdir,
                        stdin=subprocess.DEVNULL,
                        stdout=output,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,  # its own group, so a kill reaches the task's children
                        preexec_fn=_die_with_parent,  # noqa: PLW1509 - only prctl(2)
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
        if not run.deleted:
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

