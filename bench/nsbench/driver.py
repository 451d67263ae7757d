"""The child side (one executor per process, driven over stdin/stdout) and the parent's handle on it.

The parent writes one JSON command per line (``{"op": ..., "args": {...}}``) and reads one JSON
answer per line; ``ChildExecutor.op_<name>`` serves each. Timestamps are CLOCK_MONOTONIC, which is
comparable across processes on one machine.
"""

# Imports inside functions are deliberate: Airflow reads its configuration when first imported, so the
# executor modules are imported in the child only after its AIRFLOW__* environment is in place, and the
# parent never imports Airflow before the bench's private AIRFLOW_HOME exists.
# ruff: noqa: PLC0415

from __future__ import annotations

import contextlib
import functools
import json
import os
import queue
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .common import REPO

if TYPE_CHECKING:  # for annotations only: see above for why Airflow is imported late
    from airflow.providers.cncf.kubernetes.executors.kubernetes_executor import KubernetesExecutor
    from airflow.providers.cncf.kubernetes.executors.kubernetes_executor_utils import (
        AirflowKubernetesScheduler,
    )

    from airflow_provider_nsdiscovery.discovery.controller import NamespaceDiscovery
    from airflow_provider_nsdiscovery.executors import DynamicNamespaceKubernetesExecutor
    from airflow_provider_nsdiscovery.executors.scheduler import DynamicNamespaceKubernetesScheduler


class Recorder:
    """Timestamps (CLOCK_MONOTONIC, comparable across processes) of what the hooks saw."""

    def __init__(self) -> None:
        self.events: dict[tuple[str, str], list[float]] = defaultdict(list)
        self.cond = threading.Condition()

    def add(self, namespace: str, kind: str, when: float) -> None:
        with self.cond:
            self.events[(namespace, kind)].append(when)
            self.cond.notify_all()

    def first_after(self, namespace: str, kind: str, after: float) -> float | None:
        return next((t for t in self.events.get((namespace, kind), ()) if t >= after), None)

    def wait(self, namespace: str, kind: str, after: float, timeout: float) -> float | None:
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                found = self.first_after(namespace, kind, after)
                remaining = deadline - time.monotonic()
                if found is not None or remaining <= 0:
                    return found
                self.cond.wait(remaining)


class ChildExecutor:
    """The executor under test plus the instrumentation the parent asks for."""

    def __init__(self, spec: dict[str, Any]) -> None:
        os.environ.update(spec["env"])
        self.impl = spec["impl"]
        cls: type[KubernetesExecutor]
        if self.impl == "ours":
            from airflow_provider_nsdiscovery.executors import (
                DynamicNamespaceKubernetesExecutor as cls,
            )
        else:
            from airflow.providers.cncf.kubernetes.executors.kubernetes_executor import (
                KubernetesExecutor as cls,
            )
        self.executor = cls()
        self.executor.job_id = spec["job_id"]
        self.rec = Recorder()
        self.tasks = 0
        self.pods: dict[str, str] = {}  # namespace -> name of the last pod created there
        self._sync_loop: tuple[threading.Event, threading.Thread] | None = None

    # The commands that read discovery or our scheduler's internals run only with impl "ours".

    def _ours(self) -> DynamicNamespaceKubernetesExecutor:
        from airflow_provider_nsdiscovery.executors import DynamicNamespaceKubernetesExecutor

        assert isinstance(self.executor, DynamicNamespaceKubernetesExecutor), self.impl
        return self.executor

    def _discovery(self) -> NamespaceDiscovery:
        discovery = self._ours().discovery
        assert discovery is not None, "the executor has not started"
        return discovery

    def _scheduler(self) -> AirflowKubernetesScheduler:
        scheduler = self.executor.kube_scheduler
        assert scheduler is not None, "the executor has not started"
        return scheduler

    def _our_scheduler(self) -> DynamicNamespaceKubernetesScheduler:
        from airflow_provider_nsdiscovery.executors.scheduler import DynamicNamespaceKubernetesScheduler

        scheduler = self._scheduler()
        assert isinstance(scheduler, DynamicNamespaceKubernetesScheduler), type(scheduler)
        return scheduler

    # -- commands ------------------------------------------------------------------------------

    def op_start(self, expect: list[str], timeout: float = 180.0) -> dict[str, Any]:
        phases: dict[str, float] = {}
        if self.impl == "ours":
            from airflow_provider_nsdiscovery.discovery.controller import NamespaceDiscovery

            discovery_start = NamespaceDiscovery.start

            # The replaced method's own signature, names included (mypy compares them).
            def timed_start(self: NamespaceDiscovery, *, threads: bool = True) -> None:
                started = time.monotonic()
                discovery_start(self, threads=threads)
                phases["discovery_s"] = time.monotonic() - started

            NamespaceDiscovery.start = timed_start  # type: ignore[method-assign]
        wall0, t0 = time.time(), time.monotonic()
        self.executor.start()
        t1 = time.monotonic()
        watchers = self._scheduler().kube_watchers
        wanted = set(expect)
        deadline = t1 + timeout
        while True:
            live = {ns for ns, w in list(watchers.items()) if w.is_alive()}
            if wanted <= live or time.monotonic() > deadline:
                break
            time.sleep(0.001)
        t_all = time.monotonic() if wanted <= live else None
        if self.impl == "ours":
            self._install_hooks()
        return {
            "t0": t0,
            "wall0": wall0,
            "t_returned": t1,
            "t_all_live": t_all,
            "live": len(live),
            "missing": len(wanted - live),
            **phases,
        }

    def _install_hooks(self) -> None:
        """Timestamp watcher start/stop, state changes and pod creation where they happen.

        Each hook wraps an instance attribute and records *after* the wrapped call returned, so a
        timestamp means "done and visible", never "about to happen".
        """
        self._hook_watchers()
        self._hook_discovery()
        self._hook_pod_creates()

    def _stopped(self, stopped: Any, before: dict[str, Any]) -> None:
        now = time.monotonic()
        for ns in stopped:
            self.rec.add(ns, "watch-stop", now)
            if (watcher := before.get(ns)) is not None:
                threading.Thread(target=self._await_exit, args=(ns, watcher), daemon=True).start()

    def _hook_watchers(self) -> None:
        rec = self.rec
        watcher_set = self._our_scheduler()._watchers
        reconcile, stop_unwanted = watcher_set.reconcile, watcher_set.stop_unwanted

        def timed_reconcile(desired: Any = None) -> Any:
            before = dict(watcher_set.running)
            result = reconcile(desired)
            now = time.monotonic()
            for ns in result.started | result.restarted:
                rec.add(ns, "watch-start", now)
            self._stopped(result.stopped, before)
            return result

        def timed_stop_unwanted(desired: Any) -> frozenset[str]:
            before = dict(watcher_set.running)
            stopped = stop_unwanted(desired)
            self._stopped(stopped, before)
            return stopped

        watcher_set.reconcile = timed_reconcile  # type: ignore[method-assign]
        watcher_set.stop_unwanted = timed_stop_unwanted  # type: ignore[method-assign]
        factory = watcher_set._factory

        def timed_factory(namespace: str) -> Any:
            watcher = factory(namespace)
            api = watcher._api
            list_pods = api.list_namespaced_pod

            # The kubernetes Watch reads the wrapped method's docstring: keep it.
            @functools.wraps(list_pods)
            def timed_list_pods(*args: Any, **kwargs: Any) -> Any:
                response = list_pods(*args, **kwargs)
                rec.add(namespace, "watch-open", time.monotonic())  # the API server answered
                return response

            api.list_namespaced_pod = timed_list_pods
            job_watcher = watcher._job_watcher
            process_status = job_watcher.process_status

            def timed_process_status(*args: Any, **kwargs: Any) -> None:
                # Where upstream's watch loop hands a pod's event on: the watcher has seen the pod.
                rec.add(namespace, "pod-seen", time.monotonic())
                process_status(*args, **kwargs)

            job_watcher.process_status = timed_process_status  # type: ignore[method-assign]
            return watcher

        watcher_set._factory = timed_factory

    def _hook_discovery(self) -> None:
        rec = self.rec
        table = self._discovery().table
        put = table.put

        def timed_put(status: Any) -> Any:
            previous = put(status)
            if previous is None or previous.state is not status.state:
                rec.add(status.name, f"state:{status.state.value}", time.monotonic())
            return previous

        table.put = timed_put  # type: ignore[method-assign]
        placement = self._discovery().placement
        placement_changed = placement.on_change

        def timed_placement_change(namespace: str) -> None:
            placement_changed(namespace)
            if placement.count(namespace) == 0:
                rec.add(namespace, "no-tasks", time.monotonic())

        placement.on_change = timed_placement_change

    def _hook_pod_creates(self) -> None:
        scheduler = self._our_scheduler()
        run_pod_async = scheduler.run_pod_async

        def timed_run_pod_async(pod: Any, **kwargs: Any) -> Any:
            response = run_pod_async(pod, **kwargs)
            self.pods[pod.metadata.namespace] = pod.metadata.name
            self.rec.add(pod.metadata.namespace, "pod-created", time.monotonic())
            return response

        scheduler.run_pod_async = timed_run_pod_async  # type: ignore[method-assign]

    def _await_exit(self, namespace: str, watcher: Any) -> None:
        watcher.join(10)
        if not watcher.is_alive():
            self.rec.add(namespace, "thread-exit", time.monotonic())

    def op_wait(self, ns: str, kind: str, after: float, timeout: float = 10.0) -> dict[str, Any]:
        return {"t": self.rec.wait(ns, kind, after, timeout)}

    def op_first(self, items: list[list[Any]]) -> dict[str, Any]:
        """First event at or after each (namespace, kind, after), without waiting."""
        with self.rec.cond:
            return {"t": [self.rec.first_after(ns, kind, after) for ns, kind, after in items]}

    def _key(self) -> Any:
        from airflow.models.taskinstancekey import TaskInstanceKey

        self.tasks += 1
        return TaskInstanceKey("bench_dag", f"task_{self.tasks}", "manual__1", 1, -1)

    def op_launch(self, ns: str) -> dict[str, Any]:
        """Queue a task into ``ns`` the way the scheduler does and run one executor heartbeat."""
        from kubernetes.client import models as k8s

        t_recv = time.monotonic()
        counters = self._discovery().counters
        misses = counters.validation_misses
        key = self._key()
        config = {"pod_override": k8s.V1Pod(metadata=k8s.V1ObjectMeta(namespace=ns))}
        self.executor.running.add(key)
        self.executor.execute_async(
            key,
            ["airflow", "tasks", "run", key.dag_id, key.task_id, key.run_id],
            executor_config=config,
        )
        self.executor.sync()
        state = self.executor.event_buffer.get(key)
        refused = str(state[1]) if state and str(state[0]) == "failed" else None
        t_created = self.rec.first_after(ns, "pod-created", t_recv)
        return {
            "t_recv": t_recv,
            "t_created": t_created,
            "pod": self.pods.get(ns) if t_created is not None else None,
            "t_sync_done": time.monotonic(),
            "on_demand": counters.validation_misses - misses,
            "refused": refused,
        }

    def op_loop_cost(self, namespaces: list[str], tasks: int) -> dict[str, Any]:
        from .loop_probe import LoopCost

        return LoopCost(self.executor, self._scheduler(), self._key, ours=self.impl == "ours").run(
            namespaces, tasks
        )

    def op_access_watched(self) -> dict[str, Any]:
        return {"watched": self._discovery().access_watched}

    def op_sync_loop(self, cadence: float) -> dict[str, Any]:
        """Start (cadence > 0) or stop (0) calling ``sync()`` every ``cadence`` seconds on a thread.

        The scheduler calls the executor's heartbeat (and so ``sync()``) once per scheduler loop;
        an idle scheduler sleeps ``scheduler_idle_sleep_time`` between loops. Each sync's start
        is recorded under ("", "sync"). No other op may call ``sync()`` while the loop runs.
        """
        if self._sync_loop is not None:
            stop, thread = self._sync_loop
            stop.set()
            thread.join(30)
            self._sync_loop = None
        if cadence <= 0:
            return {}
        stop = threading.Event()

        def loop() -> None:
            while not stop.is_set():
                self.rec.add("", "sync", time.monotonic())
                self.executor.sync()
                stop.wait(cadence)

        thread = threading.Thread(target=loop, name="bench-sync-loop", daemon=True)
        thread.start()
        self._sync_loop = (stop, thread)
        return {}

    def op_validation(
        self,
        permitted: str,
        forced_miss: list[str],
        unselected: str,
        iterations: int,
        miss_iterations: int,
    ) -> dict[str, Any]:
        import timeit

        from airflow.providers.cncf.kubernetes.executors.kubernetes_executor_types import (
            KubernetesJob,
        )
        from airflow.providers.cncf.kubernetes.pod_generator import PodGenerator
        from kubernetes.client import models as k8s

        from airflow_provider_nsdiscovery.validation import check_pod_namespace

        discovery = self._discovery()
        scheduler = self._scheduler()
        out: dict[str, Any] = {}

        def per_call_us(stmt: str, env: dict[str, Any], number: int) -> dict[str, float]:
            runs = timeit.Timer(stmt, globals=env).repeat(repeat=5, number=number)
            per = sorted(r / number * 1e6 for r in runs)
            return {"best": per[0], "median": per[len(per) // 2], "number": number}

        assert discovery.check(permitted).state.value == "permitted"
        out["hit"] = per_call_us("check(ns)", {"check": discovery.check, "ns": permitted}, iterations)
        out["invalid"] = per_call_us("check(ns)", {"check": discovery.check, "ns": "Team_A.prod"}, iterations)

        key = self._key()
        job = KubernetesJob(
            key,
            ["airflow", "tasks", "run", key.dag_id, key.task_id, key.run_id],
            PodGenerator.from_obj(
                {"pod_override": k8s.V1Pod(metadata=k8s.V1ObjectMeta(namespace=permitted))}
            ),
            None,
        )
        pod = scheduler._build_pod_request(job)
        out["pod_check"] = per_call_us(
            "check_pod_namespace(pod, check)",
            {
                "check_pod_namespace": check_pod_namespace,
                "pod": pod,
                "check": discovery.check,
            },
            iterations,
        )
        build = []
        for _ in range(200):
            started = time.perf_counter()
            scheduler._build_pod_request(job)
            build.append((time.perf_counter() - started) * 1e6)
        out["build_pod_us"] = statistics.median(build)

        out.update(self._miss_costs(forced_miss, unselected, miss_iterations))
        return out

    def _miss_costs(self, forced_miss: list[str], unselected: str, miss_iterations: int) -> dict[str, Any]:
        discovery = self._discovery()
        out: dict[str, Any] = {}
        # Requests made while the checks run. The looks run on the controller's workers, so the
        # background re-checks of other namespaces in the same window are counted too.
        requests = discovery.counters.requests
        before = Counter(requests)

        def made() -> dict[str, int]:
            return {f"api: {k}": v - before[k] for k, v in requests.items() if v > before[k]}

        # Forced miss: recheck() looks again (one GET, one review), the same work check()
        # does for a namespace labelled a moment ago whose watch event has not arrived yet.
        samples: list[float] = []
        for i in range(miss_iterations):
            ns = forced_miss[i % len(forced_miss)]
            started = time.perf_counter()
            status = discovery.recheck(ns, "benchmark: forced miss")
            samples.append((time.perf_counter() - started) * 1e6)
            assert status.state.value == "permitted", status.message
        out["miss"] = {"samples_us": samples, "api": made()}
        before = Counter(requests)
        samples = []
        for _ in range(miss_iterations):
            started = time.perf_counter()
            status = discovery.check(unselected)
            samples.append((time.perf_counter() - started) * 1e6)
        out["unselected"] = {
            "samples_us": samples,
            "api": made(),
            "state": status.state.value,
        }
        return out

    def op_status(self) -> dict[str, Any]:
        out: dict[str, Any] = {"watchers": len(self._scheduler().kube_watchers)}
        discovery = getattr(self.executor, "discovery", None)
        if discovery is not None:
            out["counters"] = {f"api: {k}": v for k, v in discovery.counters.requests.items()}
            out["states"] = dict(Counter(s.state.value for s in discovery.table.snapshot().values()))
            out["access_watched"] = discovery.access_watched
        return out

    def op_state_of(self, ns: str) -> dict[str, Any]:
        status = self._discovery().status(ns)
        return {"state": status.state.value if status else None}

    def op_stop(self) -> dict[str, Any]:
        started = time.monotonic()
        with contextlib.suppress(Exception):
            self.executor.end()
        return {"end_s": time.monotonic() - started}


def child_main(spec_path: str) -> None:
    # The protocol owns the real stdout; anything else printed (Airflow, logging) goes to stderr.
    proto = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    spec = json.loads(Path(spec_path).read_text())

    def send(payload: dict[str, Any]) -> None:
        proto.write(json.dumps(payload) + "\n")
        proto.flush()

    try:
        child = ChildExecutor(spec)
    except Exception as err:
        send({"error": f"construct: {err!r}"})
        raise
    send({"ready": True, "pid": os.getpid()})
    for line in sys.stdin:
        command = json.loads(line)
        op = command["op"]
        try:
            result = getattr(child, f"op_{op}")(**command.get("args", {}))
        except Exception as err:
            import traceback

            traceback.print_exc()
            result = {"error": f"{op}: {err!r}"}
        send(result)
        if op == "stop":
            break
    proto.close()


# =============================================================================================
# Parent side


class Child:
    """An executor child process and its JSON-lines pipe."""

    def __init__(self, name: str, impl: str, env: dict[str, str], job_id: int, workdir: Path) -> None:
        self.name = name
        spec = workdir / f"{name}.json"
        spec.write_text(json.dumps({"impl": impl, "env": env, "job_id": job_id}))
        self.log_path = workdir / f"{name}.log"
        self._log = self.log_path.open("w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bench.nsbench", "--child", str(spec)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
            cwd=REPO,
            start_new_session=True,  # its own process group: upstream's watcher processes die with it
        )
        self._lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        ready = self._next(120)
        if not ready.get("ready"):
            raise RuntimeError(f"{name} did not start: {ready} (log: {self.log_path})")
        self.pid = int(ready["pid"])

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._lines.put(line)
        self._lines.put(None)

    def _next(self, timeout: float) -> dict[str, Any]:
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            raise TimeoutError(f"{self.name}: no answer in {timeout:.0f}s (log: {self.log_path})") from None
        if line is None:
            raise RuntimeError(f"{self.name} exited (code {self.proc.poll()}); log: {self.log_path}")
        return dict(json.loads(line))

    def call(self, op: str, timeout: float = 60.0, **args: Any) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"op": op, "args": args}) + "\n")
        self.proc.stdin.flush()
        answer = self._next(timeout)
        if "error" in answer:
            raise RuntimeError(f"{self.name}: {answer['error']} (log: {self.log_path})")
        return answer

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.call("stop", timeout=30)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(Exception):
            self.proc.wait(10)
