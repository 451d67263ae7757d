"""Child side of the scheduler-loop cost (driver.py ``op_loop_cost``): per task, ``execute_async``
(pod_override naming a permitted namespace) + the ``sync()`` that creates its pod, while every
watcher runs; the namespaces are taken in turn.

Every namespace the timed tasks use first gets one pod, untimed in the table, right before its
timed tasks: the API server takes longer over a create in a namespace that has had none for about
30 s, the first pod included (measured beside the bench with a bare client: ~80-100 ms, against
~4-9 ms for the next create at once; its create request is recorded on its own), and which mode
met a cold namespace must not decide the comparison. Warming all namespaces up front let them go
cold again at large N, where going through hundreds of warm-up pods took longer than that: the
per-task cost then grew with N for the API server's sake, not the executor's. A real team
namespace runs many tasks.

Ours runs ``tasks`` tasks each way, alternating task by task: with the pre-launch check ("on"),
and with the scheduler's ``_build_pod_request`` bound to upstream's own
(``AirflowKubernetesScheduler._build_pod_request``, reached through the class hierarchy: no check,
no task placement; "off"). In "on", the time in our ``_build_pod_request`` beyond upstream's
inside it is the check's share. The pod create request is timed on its own in every mode.
"""

# Imported by the child only, after its AIRFLOW__* environment is set (see driver.py).
# ruff: noqa: PLC0415

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any

PARTS = ("total_ms", "check_ms", "execute_async_ms", "create_request_ms")


class LoopCost:
    def __init__(self, executor: Any, scheduler: Any, new_key: Callable[[], Any], *, ours: bool) -> None:
        from airflow.providers.cncf.kubernetes.executors.kubernetes_executor_utils import (
            AirflowKubernetesScheduler,
        )

        self.executor, self.scheduler, self.new_key = executor, scheduler, new_key
        self.modes = ["on", "off"] if ours else ["upstream"]
        self.base = AirflowKubernetesScheduler
        self.upstream_build = AirflowKubernetesScheduler._build_pod_request
        self.ours_build = scheduler._build_pod_request
        self.run_pod_async = scheduler.run_pod_async
        self.inner: list[float] = []  # seconds in upstream's _build_pod_request, per call
        self.outer: list[float] = []  # seconds in the scheduler's own, per call
        self.api: list[float] = []  # seconds in the pod create request
        self.builds: dict[str, Callable[[Any], Any]] = {
            "on": self._timed(self.ours_build, self.outer),
            "off": functools.partial(self.upstream_build, scheduler),
            "upstream": self.ours_build,  # upstream's scheduler: its own method
        }

    @staticmethod
    def _timed(call: Callable[..., Any], into: list[float]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return call(*args, **kwargs)
            finally:
                into.append(time.perf_counter() - started)

        return timed

    def run(self, namespaces: list[str], tasks: int) -> dict[str, Any]:
        out: dict[str, dict[str, list[float]]] = {m: {k: [] for k in PARTS} for m in self.modes}
        failed = 0
        self.base._build_pod_request = self._timed(self.upstream_build, self.inner)  # type: ignore[method-assign]
        self.scheduler.run_pod_async = self._timed(self.run_pod_async, self.api)
        first: list[float] = []  # create request of each namespace's first pod
        try:
            targets = [namespaces[j % len(namespaces)] for j in range(tasks)]
            warmed: set[str] = set()
            for j, namespace in enumerate(targets):
                if namespace not in warmed:  # the first also warms the pod template
                    key, sample = self._one(self.modes[len(warmed) % len(self.modes)], namespace)
                    warmed.add(namespace)
                    first.append(sample["create_request_ms"])
                # Each mode goes first in every other pair: neither always follows the other.
                for mode in self.modes if j % 2 == 0 else self.modes[::-1]:
                    key, sample = self._one(mode, namespace)
                    for part, value in sample.items():
                        out[mode][part].append(value)
                    state = self.executor.event_buffer.get(key)
                    failed += bool(state and str(state[0]) == "failed")
        finally:
            self.base._build_pod_request = self.upstream_build  # type: ignore[method-assign]
            self.scheduler._build_pod_request = self.ours_build
            self.scheduler.run_pod_async = self.run_pod_async
        return {
            "modes": out,
            "first_pod_create_request_ms": first,
            "failed": failed,
            "watchers": len(self.scheduler.kube_watchers),
        }

    def _one(self, mode: str, namespace: str) -> tuple[Any, dict[str, float]]:
        from kubernetes.client import models as k8s

        key = self.new_key()
        config = {"pod_override": k8s.V1Pod(metadata=k8s.V1ObjectMeta(namespace=namespace))}
        self.scheduler._build_pod_request = self.builds[mode]
        del self.inner[:], self.outer[:], self.api[:]
        started = time.perf_counter()
        self.executor.running.add(key)
        self.executor.execute_async(
            key, ["airflow", "tasks", "run", key.dag_id, key.task_id, key.run_id], executor_config=config
        )
        queued = time.perf_counter()
        self.executor.sync()
        sample = {
            "total_ms": (time.perf_counter() - started) * 1000,
            "execute_async_ms": (queued - started) * 1000,
            "create_request_ms": sum(self.api) * 1000,
        }
        if mode == "on" and self.outer and self.inner:
            sample["check_ms"] = (self.outer[-1] - self.inner[-1]) * 1000
        return key, sample
