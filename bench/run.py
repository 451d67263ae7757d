#!/usr/bin/env python
"""Benchmarks of DynamicNamespaceKubernetesExecutor against a real local kube-apiserver.

Run from the repository root with the project's virtualenv::

    python bench/run.py            # full run, writes docs/benchmarks.md (about 8 minutes on 2 cores)
    python bench/run.py --quick    # smoke run: few trials, small sizes, nothing written

What it measures (see docs/benchmarks.md for the method and the latest numbers):

1. latency of the watch-driven paths (label added -> watcher running, label added -> first pod,
   label removed -> watcher stopped, namespace deleted -> watcher stopped) and of the re-check
   path (RoleBinding removed -> forbidden);
2. the cost of the pre-launch namespace check;
3. start-up at N = 10 .. 1000 permitted namespaces, against the upstream KubernetesExecutor in
   multi_namespace_mode with the same namespaces listed (one watcher process per namespace);
4. steady-state API load at N = 1000, per 10-second bucket.

Every measured executor runs in a child process of its own (``bench/run.py --child SPEC``),
configured through AIRFLOW__* environment variables exactly like the integration tests'
``make_executor`` fixture, and driven over a JSON-lines pipe. The parent owns the control plane,
applies every change with the admin client and reads the API server's own /metrics.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import json
import math
import os
import platform
import queue
import random
import re
import shutil
import signal
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

POD_TEMPLATE = REPO / "tests" / "integration" / "pod_template.yaml"
DOC = REPO / "docs" / "benchmarks.md"
SELECTOR_KEY = "nsd-bench"
FORBIDDEN_SELECTOR_KEY = "nsd-bench-b"
TASK_ROLE = "nsd-bench-task-pods"
MIB = 1024 * 1024

# Goals from the issue.
GOAL_WATCH_P99_MS = 250.0
GOAL_CHECK_HIT_US = 20.0
GOAL_RSS_RATIO_AT_100 = 0.2
GOAL_DISCOVERY_1000_S = 10.0

# API server request kinds that the scheduler's identity makes; everything else on /metrics is the
# API server talking to itself (leases, APF) or the bench scraping /metrics.
SCHEDULER_RESOURCES = {
    "namespaces",
    "pods",
    "selfsubjectrulesreviews",
    "selfsubjectaccessreviews",
    "selfsubjectreviews",
}


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


# =============================================================================================
# Child side: one executor per process, driven over stdin/stdout
# =============================================================================================


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
        if self.impl == "ours":
            from airflow_provider_nsdiscovery.executors import DynamicNamespaceKubernetesExecutor as cls
        else:
            from airflow.providers.cncf.kubernetes.executors.kubernetes_executor import (
                KubernetesExecutor as cls,
            )
        self.executor = cls()
        self.executor.job_id = spec["job_id"]
        self.rec = Recorder()
        self.tasks = 0

    # -- commands ------------------------------------------------------------------------------

    def op_start(self, expect: list[str], timeout: float = 180.0) -> dict[str, Any]:
        t0 = time.monotonic()
        self.executor.start()
        t1 = time.monotonic()
        watchers = self.executor.kube_scheduler.kube_watchers
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
        return {"t0": t0, "t_returned": t1, "t_all_live": t_all, "live": len(live), "missing": len(wanted - live)}

    def _install_hooks(self) -> None:
        """Timestamp watcher start/stop, state changes and pod creation where they happen.

        Each hook wraps an instance attribute and records *after* the wrapped call returned, so a
        timestamp means "done and visible", never "about to happen".
        """
        rec = self.rec
        scheduler = self.executor.kube_scheduler
        watcher_set = scheduler._watchers
        reconcile = watcher_set.reconcile

        def timed_reconcile(desired: Any = None) -> Any:
            before = dict(watcher_set.running)
            result = reconcile(desired)
            now = time.monotonic()
            for ns in result.started | result.restarted:
                rec.add(ns, "watch-start", now)
            for ns in result.stopped:
                rec.add(ns, "watch-stop", now)
                watcher = before.get(ns)
                if watcher is not None:
                    threading.Thread(target=self._await_exit, args=(ns, watcher), daemon=True).start()
            return result

        watcher_set.reconcile = timed_reconcile

        table = self.executor.discovery.table
        put = table.put

        def timed_put(status: Any) -> Any:
            previous = put(status)
            if previous is None or previous.state is not status.state:
                rec.add(status.name, f"state:{status.state.value}", time.monotonic())
            return previous

        table.put = timed_put

        run_pod_async = scheduler.run_pod_async

        def timed_run_pod_async(pod: Any, **kwargs: Any) -> Any:
            response = run_pod_async(pod, **kwargs)
            rec.add(pod.metadata.namespace, "pod-created", time.monotonic())
            return response

        scheduler.run_pod_async = timed_run_pod_async

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
        counters = self.executor.discovery.counters
        misses = counters["validation cache miss"]
        key = self._key()
        config = {"pod_override": k8s.V1Pod(metadata=k8s.V1ObjectMeta(namespace=ns))}
        self.executor.running.add(key)
        self.executor.execute_async(
            key, ["airflow", "tasks", "run", key.dag_id, key.task_id, key.run_id], executor_config=config
        )
        self.executor.sync()
        state = self.executor.event_buffer.get(key)
        refused = str(state[1]) if state and str(state[0]) == "failed" else None
        return {
            "t_recv": t_recv,
            "t_created": self.rec.first_after(ns, "pod-created", t_recv),
            "t_sync_done": time.monotonic(),
            "on_demand": counters["validation cache miss"] - misses,
            "refused": refused,
        }

    def op_validation(
        self, permitted: str, forced_miss: list[str], unselected: str, iterations: int, miss_iterations: int
    ) -> dict[str, Any]:
        import timeit

        from airflow.providers.cncf.kubernetes.executors.kubernetes_executor_types import KubernetesJob
        from airflow.providers.cncf.kubernetes.pod_generator import PodGenerator
        from kubernetes.client import models as k8s

        from airflow_provider_nsdiscovery.validation import check_pod_namespace

        discovery = self.executor.discovery
        scheduler = self.executor.kube_scheduler
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
            PodGenerator.from_obj({"pod_override": k8s.V1Pod(metadata=k8s.V1ObjectMeta(namespace=permitted))}),
            None,
        )
        pod = scheduler._build_pod_request(job)
        out["pod_check"] = per_call_us(
            "check_pod_namespace(pod, check)",
            {"check_pod_namespace": check_pod_namespace, "pod": pod, "check": discovery.check},
            iterations,
        )
        build = []
        for _ in range(200):
            started = time.perf_counter()
            scheduler._build_pod_request(job)
            build.append((time.perf_counter() - started) * 1e6)
        out["build_pod_us"] = statistics.median(build)

        def api_counts() -> Counter[str]:
            return Counter({k: v for k, v in discovery.counters.items() if k.startswith("api: ")})

        # Forced miss: forget the row and the cached review first, so each call costs what a
        # namespace labelled a moment ago (watch event not yet processed) costs at launch time.
        samples, before = [], api_counts()
        for i in range(miss_iterations):
            ns = forced_miss[i % len(forced_miss)]
            discovery.table.discard([ns])
            discovery._reviewer.invalidate(ns)
            started = time.perf_counter()
            status = discovery.check(ns)
            samples.append((time.perf_counter() - started) * 1e6)
            assert status.state.value == "permitted", status.message
        out["miss"] = {"samples_us": samples, "api": dict(api_counts() - before)}

        samples, before = [], api_counts()
        for _ in range(miss_iterations):
            started = time.perf_counter()
            status = discovery.check(unselected)
            samples.append((time.perf_counter() - started) * 1e6)
        out["unselected"] = {"samples_us": samples, "api": dict(api_counts() - before), "state": status.state.value}
        return out

    def op_status(self) -> dict[str, Any]:
        out: dict[str, Any] = {"watchers": len(self.executor.kube_scheduler.kube_watchers)}
        discovery = getattr(self.executor, "discovery", None)
        if discovery is not None:
            out["counters"] = dict(discovery.counters)
            out["states"] = dict(Counter(s.state.value for s in discovery.table.snapshot().values()))
        return out

    def op_state_of(self, ns: str) -> dict[str, Any]:
        status = self.executor.discovery.status(ns)
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
    os._exit(0)  # upstream leaves non-daemon bits behind; the parent reaps the process group


# =============================================================================================
# Parent side
# =============================================================================================


class Child:
    """An executor child process and its JSON-lines pipe."""

    def __init__(self, name: str, impl: str, env: dict[str, str], job_id: int, workdir: Path) -> None:
        self.name = name
        spec = workdir / f"{name}.json"
        spec.write_text(json.dumps({"impl": impl, "env": env, "job_id": job_id}))
        self.log_path = workdir / f"{name}.log"
        self._log = self.log_path.open("w")
        self.proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--child", str(spec)],
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
        self._log.close()


def process_tree(pid: int) -> dict[str, Any]:
    """Processes, threads and memory of ``pid`` and all its descendants (the Managers, watchers)."""
    import psutil

    root = psutil.Process(pid)
    procs = [root, *root.children(recursive=True)]
    out = {"processes": 0, "threads": 0, "rss": 0, "pss": 0, "uss": 0, "main_threads": root.num_threads()}
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            full = proc.memory_full_info()
            out["processes"] += 1
            out["threads"] += proc.num_threads()
            out["rss"] += full.rss
            out["pss"] += full.pss
            out["uss"] += full.uss
    return out


def mem_available() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    return 0


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile: with 100 samples p99 is the 99th smallest, with 50 the largest."""
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


# ---------------------------------------------------------------------------------------------
# API server metrics


_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)\{(.*)\} (\S+)$")
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


class ApiMetrics:
    """Reads kube-apiserver /metrics with the admin token."""

    def __init__(self, cluster: Any) -> None:
        context = ssl.create_default_context(cafile=str(cluster.ca_file))
        self._opener = urllib.request.build_opener(
            urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=context)
        )
        self._request = urllib.request.Request(
            f"{cluster.host}/metrics", headers={"Authorization": f"Bearer {cluster.admin_token}"}
        )

    def scrape(self) -> dict[str, Any]:
        """Completed requests by (verb, resource) and open long-running requests by (verb, resource, scope)."""
        with self._opener.open(self._request, timeout=30) as response:
            text = response.read().decode()
        requests: Counter[str] = Counter()
        longrunning: Counter[str] = Counter()
        for line in text.splitlines():
            if not line.startswith(("apiserver_request_total{", "apiserver_longrunning_requests{")):
                continue
            match = _SAMPLE.match(line)
            if not match:
                continue
            labels = dict(_LABEL.findall(match.group(2)))
            value = float(match.group(3))
            resource = labels.get("resource", "")
            if labels.get("subresource"):
                resource = f"{resource}/{labels['subresource']}"
            if match.group(1) == "apiserver_request_total":
                if labels.get("resource") in SCHEDULER_RESOURCES:
                    requests[f"{labels.get('verb')} {resource}"] += int(value)
            else:
                longrunning[f"{labels.get('verb')} {resource} {labels.get('scope')}"] += int(value)
        return {"requests": requests, "longrunning": longrunning, "t": time.monotonic()}

    def open_pod_watches(self) -> int:
        return int(self.scrape()["longrunning"]["WATCH pods namespace"])


def request_delta(before: dict[str, Any], after: dict[str, Any]) -> Counter[str]:
    delta = Counter(after["requests"])
    delta.subtract(before["requests"])
    return Counter({k: v for k, v in delta.items() if v})


# ---------------------------------------------------------------------------------------------
# Cluster setup


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.workdir = Path(tempfile.mkdtemp(prefix="nsd-bench-"))
        self.results: dict[str, Any] = {"latency": {}, "validation": {}, "scale": [], "steady": None}
        self.cluster: Any = None
        self.children: list[Child] = []

    # -- control plane ---------------------------------------------------------------------------

    def start_cluster(self) -> None:
        from kubernetes import client

        from tests.harness.controlplane import NAMESPACE_READ_RULES, POD_RULES, resolve

        cluster = resolve()
        if cluster is None:
            sys.exit("no control plane: run `make controlplane` first (tests/harness/build-controlplane.sh)")
        started = time.monotonic()
        cluster.start()
        self.cluster = cluster
        configuration = cluster.admin_api_client().configuration
        configuration.connection_pool_maxsize = 32
        self.admin_client = client.ApiClient(configuration)
        self.core = client.CoreV1Api(self.admin_client)
        self.rbac = client.RbacAuthorizationV1Api(self.admin_client)
        self.metrics = ApiMetrics(cluster)
        self.home = "airflow-home"
        self.identity = cluster.service_account_client(
            self.home, "scheduler", cluster_rules=NAMESPACE_READ_RULES, namespace_rules={self.home: POD_RULES}
        )
        self.rbac.create_cluster_role(
            client.V1ClusterRole(metadata=client.V1ObjectMeta(name=TASK_ROLE), rules=list(POD_RULES))
        )
        log(f"control plane up at {cluster.host} in {time.monotonic() - started:.1f}s")

    def stop_cluster(self) -> None:
        for child in self.children:
            child.close()
        self.children.clear()
        if self.cluster is not None:
            with contextlib.suppress(Exception):
                self.admin_client.close()
            self.cluster.stop()
            self.cluster = None

    def create_namespaces(self, names: list[str], labels: dict[str, str] | None, grant: bool) -> None:
        """Namespaces (+ a RoleBinding to the task-pod ClusterRole), in parallel; waits until RBAC holds."""
        from kubernetes import client

        def make(name: str) -> None:
            self.core.create_namespace(
                client.V1Namespace(metadata=client.V1ObjectMeta(name=name, labels=dict(labels or {})))
            )
            if grant:
                self.grant(name)

        with concurrent.futures.ThreadPoolExecutor(16) as pool:
            list(pool.map(make, names))
        if grant and names:
            for name in (names[-1], random.choice(names)):
                self.wait_access(name, allowed=True)

    def grant(self, name: str) -> None:
        from kubernetes import client

        self.rbac.create_namespaced_role_binding(
            name,
            client.V1RoleBinding(
                metadata=client.V1ObjectMeta(name="airflow-task-pods"),
                role_ref=client.V1RoleRef(api_group="rbac.authorization.k8s.io", kind="ClusterRole", name=TASK_ROLE),
                subjects=[client.RbacV1Subject(kind="ServiceAccount", name="scheduler", namespace=self.home)],
            ),
        )

    def wait_access(self, namespace: str, *, allowed: bool, timeout: float = 15.0) -> None:
        from kubernetes import client

        authz = client.AuthorizationV1Api(self.identity.api_client)
        review = client.V1SelfSubjectAccessReview(
            spec=client.V1SelfSubjectAccessReviewSpec(
                resource_attributes=client.V1ResourceAttributes(namespace=namespace, verb="watch", resource="pods")
            )
        )
        deadline = time.monotonic() + timeout
        while bool(authz.create_self_subject_access_review(review).status.allowed) != allowed:
            if time.monotonic() > deadline:
                raise TimeoutError(f"RBAC in {namespace} did not become allowed={allowed}")
            time.sleep(0.02)

    def label(self, name: str, value: str | None, key: str = SELECTOR_KEY) -> None:
        self.core.patch_namespace(
            name, {"metadata": {"labels": {key: value}}}, _content_type="application/merge-patch+json"
        )

    # -- children ------------------------------------------------------------------------------

    def executor_env(self, impl: str, selector_key: str = SELECTOR_KEY, **discovery: str) -> dict[str, str]:
        """The integration tests' make_executor configuration, as environment variables."""
        env = {
            "KUBERNETES_EXECUTOR__IN_CLUSTER": "False",
            "KUBERNETES_EXECUTOR__CONFIG_FILE": str(self.identity.kubeconfig_path),
            "KUBERNETES_EXECUTOR__NAMESPACE": self.home,
            "KUBERNETES_EXECUTOR__POD_TEMPLATE_FILE": str(POD_TEMPLATE),
            "KUBERNETES_EXECUTOR__WORKER_CONTAINER_REPOSITORY": "busybox",
            "KUBERNETES_EXECUTOR__WORKER_CONTAINER_TAG": "1.36",
            "KUBERNETES_EXECUTOR__POD_LAUNCH_FAILURE_RETRIES": "0",
        }
        if impl == "ours":
            env["KUBERNETES_NAMESPACE_DISCOVERY__LABEL_SELECTOR"] = f"{selector_key}=true"
            env["KUBERNETES_NAMESPACE_DISCOVERY__DRAIN_POLL_INTERVAL"] = "0.2"
            env.update({f"KUBERNETES_NAMESPACE_DISCOVERY__{k.upper()}": v for k, v in discovery.items()})
        return {f"AIRFLOW__{k}": v for k, v in env.items()}

    def spawn(self, name: str, impl: str, env: dict[str, str]) -> Child:
        child = Child(name, impl, env, random.randint(10_000, 10_000_000), self.workdir)
        self.children.append(child)
        return child

    def close_child(self, child: Child) -> None:
        child.close()
        self.children.remove(child)

    # =========================================================================================
    # 1 + 2: latency and validation cost

    def run_latency(self) -> None:
        trials, warm = self.args.trials, 3
        count = trials + warm
        names = {
            "w": [f"lat-w-{i:03d}" for i in range(count)],  # label added, later removed
            "p": [f"lat-p-{i:03d}" for i in range(count)],  # label added + task launched at once
            "d": [f"lat-d-{i:03d}" for i in range(count)],  # deleted
            "v": [f"val-{i:02d}" for i in range(5)],  # forced-miss validation
            "f": [f"lat-f-{i:03d}" for i in range(count)],  # RoleBinding removed
        }
        started = time.monotonic()
        self.create_namespaces(names["w"] + names["p"] + ["val-unselected"], None, grant=True)
        self.create_namespaces(names["d"] + names["v"], {SELECTOR_KEY: "true"}, grant=True)
        self.create_namespaces(names["f"], {FORBIDDEN_SELECTOR_KEY: "true"}, grant=True)
        log(f"created {sum(map(len, names.values())) + 1} namespaces with RoleBindings in "
            f"{time.monotonic() - started:.1f}s")

        child = self.spawn("latency", "ours", self.executor_env("ours"))
        start = child.call("start", expect=[self.home, *names["d"], *names["v"]])
        log(f"latency executor started in {start['t_returned'] - start['t0']:.2f}s "
            f"({start['live']} watchers)")
        for _ in range(3):  # warm the launch path: pod template, generator, connection pools
            child.call("launch", ns=self.home)

        lat = self.results["latency"]

        # label applied -> watcher running (and -> permitted)
        watch, permitted, patch = [], [], []
        for i, ns in enumerate(names["w"]):
            time.sleep(random.uniform(0.02, 0.06))
            t0 = time.monotonic()
            self.label(ns, "true")
            t_ack = time.monotonic()
            t = child.call("wait", ns=ns, kind="watch-start", after=t0)["t"]
            tp = child.call("wait", ns=ns, kind="state:permitted", after=t0, timeout=1)["t"]
            if i >= warm:
                watch.append(_ms(t, t0))
                permitted.append(_ms(tp, t0))
                patch.append((t_ack - t0) * 1000)
        lat["label_to_watcher"] = watch
        lat["label_to_permitted"] = permitted
        lat["label_patch_rtt"] = patch
        log(f"label -> watcher running: p50 {_p(watch, 50)} p99 {_p(watch, 99)} ms")

        # label applied -> first pod created there
        pods, on_demand, refused = [], 0, 0
        for i, ns in enumerate(names["p"]):
            time.sleep(random.uniform(0.02, 0.06))
            t0 = time.monotonic()
            self.label(ns, "true")
            answer = child.call("launch", ns=ns)
            if i >= warm:
                pods.append(_ms(answer["t_created"], t0))
                on_demand += answer["on_demand"] > 0
                refused += answer["refused"] is not None
        lat["label_to_pod"] = pods
        lat["label_to_pod_on_demand"] = on_demand
        lat["label_to_pod_refused"] = refused
        log(f"label -> first pod created: p50 {_p(pods, 50)} p99 {_p(pods, 99)} ms "
            f"({on_demand} of {len(pods)} needed the on-demand look, {refused} refused)")

        # label removed -> watcher stopped
        stop, exit_ = [], []
        for i, ns in enumerate(names["w"]):
            time.sleep(random.uniform(0.02, 0.06))
            t0 = time.monotonic()
            self.label(ns, None)
            t = child.call("wait", ns=ns, kind="watch-stop", after=t0)["t"]
            te = child.call("wait", ns=ns, kind="thread-exit", after=t0, timeout=5)["t"]
            if i >= warm:
                stop.append(_ms(t, t0))
                exit_.append(_ms(te, t0))
        lat["unlabel_to_stopped"] = stop
        lat["unlabel_to_thread_exit"] = exit_
        log(f"label removed -> watcher stopped: p50 {_p(stop, 50)} p99 {_p(stop, 99)} ms")

        # namespace deleted -> watcher stopped (it stops on the Terminating transition)
        deleted = []
        for i, ns in enumerate(names["d"]):
            time.sleep(random.uniform(0.02, 0.06))
            t0 = time.monotonic()
            self.core.delete_namespace(ns)
            t = child.call("wait", ns=ns, kind="watch-stop", after=t0)["t"]
            if i >= warm:
                deleted.append(_ms(t, t0))
        lat["delete_to_stopped"] = deleted
        log(f"namespace deleted -> watcher stopped: p50 {_p(deleted, 50)} p99 {_p(deleted, 99)} ms")
        started = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            list(pool.map(self.cluster.finish_namespace_deletion, names["d"]))
        time.sleep(0.5)
        states = Counter(child.call("state_of", ns=ns)["state"] for ns in names["d"])
        lat["delete_finished"] = {"seconds": time.monotonic() - started, "states": dict(states)}
        log(f"finished deleting {len(names['d'])} namespaces via the harness in "
            f"{time.monotonic() - started:.1f}s; their states now: {dict(states)}")

        # 2: validation cost, in the same executor
        self.run_validation(child, permitted=names["p"][-1], forced_miss=names["v"])
        self.close_child(child)

        self.run_forbidden(names["f"], warm)

    def run_validation(self, child: Child, permitted: str, forced_miss: list[str]) -> None:
        answer = child.call(
            "validation",
            timeout=300,
            permitted=permitted,
            forced_miss=forced_miss,
            unselected="val-unselected",
            iterations=self.args.check_iterations,
            miss_iterations=self.args.miss_iterations,
        )
        self.results["validation"] = answer
        log(f"check() cache hit: {answer['hit']['best']:.2f} us (best of 5 x {answer['hit']['number']}); "
            f"forced miss p50 {statistics.median(answer['miss']['samples_us']) / 1000:.2f} ms "
            f"(API per call: {_per_call(answer['miss']['api'], len(answer['miss']['samples_us']))})")

    def run_forbidden(self, names: list[str], warm: int) -> None:
        interval = self.args.recheck_interval
        child = self.spawn(
            "forbidden", "ours",
            self.executor_env("ours", FORBIDDEN_SELECTOR_KEY, access_recheck_interval=str(interval)),
        )
        start = child.call("start", expect=[self.home, *names])
        log(f"forbidden executor (access_recheck_interval={interval:g}s, jitter 0.1) started with "
            f"{start['live']} watchers")
        time.sleep(interval)  # past the first re-check, whose delay is drawn from [0.5, 1] x interval
        revoked: list[tuple[str, float]] = []
        for ns in names:
            time.sleep(self.args.revoke_spacing)
            t0 = time.monotonic()
            self.rbac.delete_namespaced_role_binding("airflow-task-pods", ns)
            revoked.append((ns, t0))
        deadline = time.monotonic() + interval * 1.1 + 5
        while True:
            found = child.call("first", items=[[ns, "state:forbidden", t0] for ns, t0 in revoked])["t"]
            if all(found) or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        stopped = child.call("first", items=[[ns, "watch-stop", t0] for ns, t0 in revoked])["t"]
        values = [_ms(t, t0) for (_, t0), t in zip(revoked, found)][warm:]
        lat = self.results["latency"]
        lat["revoke_to_forbidden"] = values
        lat["revoke_to_stopped"] = [_ms(t, t0) for (_, t0), t in zip(revoked, stopped)][warm:]
        lat["recheck_interval"] = interval
        log(f"RoleBinding removed -> forbidden: p50 {_p(values, 50)} p99 {_p(values, 99)} ms "
            f"(interval {interval:g}s)")
        self.close_child(child)

    # =========================================================================================
    # 3 + 4: scale and steady state

    def run_scale(self) -> None:
        per_process: dict[str, float] | None = None
        for n in self.args.sizes:
            self.start_cluster()
            try:
                names = [f"s{n}-{i:04d}" for i in range(n)]
                started = time.monotonic()
                self.create_namespaces(names, {SELECTOR_KEY: "true"}, grant=True)
                log(f"N={n}: created {n} labelled namespaces with RoleBindings in {time.monotonic() - started:.1f}s")
                steady = n == max(self.args.sizes) and self.args.steady_seconds > 0
                ours = self.measure_start("ours", n, names, steady=steady)
                self.results["scale"].append(ours)
                upstream_ok, why = self.upstream_fits(n, per_process)
                if upstream_ok:
                    up = self.measure_start("upstream", n, names)
                    self.results["scale"].append(up)
                    per_process = up["per_watcher"]
                else:
                    log(f"N={n}: upstream not run ({why}); extrapolated from the measured sizes")
                    self.results["scale"].append({"impl": "upstream", "n": n, "skipped": why})
            finally:
                self.stop_cluster()

    def upstream_fits(self, n: int, per_process: dict[str, float] | None) -> tuple[bool, str]:
        if n <= self.args.upstream_max:
            return True, ""
        available = mem_available()
        if per_process is None:
            return False, f"N > --upstream-max {self.args.upstream_max} and nothing measured to size it"
        need = n * per_process["rss"]
        if need > 0.5 * available:
            return False, (f"{n} watcher processes x {per_process['rss'] / MIB:.0f} MiB RSS = "
                           f"{need / 2**30:.1f} GiB > half of the {available / 2**30:.1f} GiB available")
        return True, ""

    def measure_start(self, impl: str, n: int, names: list[str], steady: bool = False) -> dict[str, Any]:
        expect = [self.home, *names]
        if impl == "ours":
            env = self.executor_env("ours")
        else:
            env = self.executor_env("upstream")
            env["AIRFLOW__KUBERNETES_EXECUTOR__MULTI_NAMESPACE_MODE"] = "True"
            env["AIRFLOW__KUBERNETES_EXECUTOR__MULTI_NAMESPACE_MODE_NAMESPACE_LIST"] = ",".join(expect)
        child = self.spawn(f"scale-{impl}-{n}", impl, env)
        idle = process_tree(child.pid)
        m0 = self.metrics.scrape()
        baseline_watches = m0["longrunning"]["WATCH pods namespace"]
        result: dict[str, Any] = {"impl": impl, "n": n}
        answers: queue.Queue[dict[str, Any]] = queue.Queue()
        t_sent = time.monotonic()
        threading.Thread(target=lambda: answers.put(child.call("start", timeout=600, expect=expect)), daemon=True).start()
        # All pod watches open on the API server: the same finish line for both executors.
        t_open = None
        while time.monotonic() - t_sent < 300:
            opened = self.metrics.open_pod_watches() - baseline_watches
            if opened >= len(expect):
                t_open = time.monotonic()
                break
            time.sleep(0.1)
        start = answers.get(timeout=600)
        time.sleep(2.0)  # let the last watchers settle before counting memory and requests
        m1 = self.metrics.scrape()
        tree = process_tree(child.pid)
        status = child.call("status")
        t0 = start["t0"]
        result.update(
            start_returned_s=start["t_returned"] - t0,
            all_live_s=(start["t_all_live"] - t0) if start["t_all_live"] else None,
            all_open_s=(t_open - t0) if t_open else None,
            watchers=start["live"],
            requests=dict(request_delta(m0, m1)),
            open_watches=m1["longrunning"]["WATCH pods namespace"] - baseline_watches,
            tree=tree,
            idle_tree=idle,
            counters=status.get("counters", {}),
        )
        extra = max(tree["processes"] - idle["processes"], 1)
        result["per_watcher"] = {k: (tree[k] - idle[k]) / extra for k in ("rss", "pss", "uss")}
        log(f"N={n} {impl}: start() {result['start_returned_s']:.2f}s, all {len(expect)} watchers live "
            f"{_s(result['all_live_s'])}, all watches open {_s(result['all_open_s'])}; "
            f"{tree['processes']} processes, {tree['threads']} threads, RSS {tree['rss'] / MIB:.0f} MiB, "
            f"PSS {tree['pss'] / MIB:.0f} MiB; requests {sum(result['requests'].values())}")
        if steady:
            self.results["steady"] = self.measure_steady(child, n, t0)
        self.close_child(child)
        return result

    def measure_steady(self, child: Child, n: int, t_start: float) -> dict[str, Any]:
        seconds, bucket = self.args.steady_seconds, 10
        log(f"N={n}: steady-state API load for {seconds}s in {bucket}s buckets "
            "(access_recheck_interval=60, recheck_jitter=0.1)")
        rows = []
        previous = self.metrics.scrape()
        first = previous["t"]
        next_at = first + bucket
        while next_at <= first + seconds + 0.01:
            time.sleep(max(0.0, next_at - time.monotonic()))
            current = self.metrics.scrape()
            delta = request_delta(previous, current)
            rows.append({"from_s": previous["t"] - t_start, "to_s": current["t"] - t_start, "requests": dict(delta)})
            log(f"  {previous['t'] - t_start:6.1f}-{current['t'] - t_start:6.1f}s after start(): "
                + ", ".join(f"{k} {v}" for k, v in sorted(delta.items())))
            previous, next_at = current, next_at + bucket
        status = child.call("status")
        return {"n": n, "bucket_s": bucket, "rows": rows, "counters": status.get("counters", {}),
                "watchers": status["watchers"], "tree": process_tree(child.pid)}

    # =========================================================================================

    def cleanup(self) -> None:
        self.stop_cluster()
        shutil.rmtree(self.workdir, ignore_errors=True)


def _ms(t: float | None, t0: float) -> float:
    return float("nan") if t is None else (t - t0) * 1000


def _p(values: list[float], p: float) -> str:
    clean = [v for v in values if not math.isnan(v)]
    return f"{percentile(clean, p):.1f}" if clean else "n/a"


def _s(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}s"


def _per_call(api: dict[str, int], calls: int) -> str:
    return ", ".join(f"{v / calls:g} {k.removeprefix('api: ')}" for k, v in sorted(api.items())) or "none"


# =============================================================================================
# Environment and report


def summary_table(results: dict[str, Any]) -> str:
    return json.dumps({k: v for k, v in results.items() if k != "scale"}, default=str)[:3000] + "\n" + json.dumps(results["scale"], default=str)[:6000]


def render(results: dict[str, Any]) -> str:
    return "TODO"


def machine_info(cluster_version: str) -> dict[str, str]:
    import airflow
    import kubernetes
    from airflow.providers.cncf.kubernetes import __version__ as cncf_version

    cpu = next(
        (line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
         if line.startswith("model name")),
        platform.processor() or "unknown",
    )
    total = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                 if line.startswith("MemTotal:"))
    return {
        "nproc": subprocess.run(["nproc"], capture_output=True, text=True, check=False).stdout.strip(),
        "cpu": cpu,
        "ram": f"{total / 2**20:.1f} GiB",
        "kernel": platform.release(),
        "python": platform.python_version(),
        "kube-apiserver": cluster_version,
        "apache-airflow": airflow.__version__,
        "cncf-kubernetes provider": cncf_version,
        "kubernetes client": kubernetes.__version__,
    }


def apiserver_version() -> str:
    from tests.harness.controlplane import find_binaries

    binaries = find_binaries()
    if binaries is None:
        return "unknown"
    out = []
    for name, flag in (("kube-apiserver", "--version"), ("etcd", "--version")):
        text = subprocess.run([str(binaries / name), flag], capture_output=True, text=True, check=False).stdout
        out.append(text.strip().splitlines()[0] if text.strip() else name)
    return "; ".join(out)


def prepare_airflow_home() -> None:
    """A private Airflow home with a migrated database, as the integration tests use."""
    import tests.airflow_env as airflow_env  # sets AIRFLOW_HOME etc. in os.environ; children inherit them

    started = time.monotonic()
    airflow_env.migrate_database()
    log(f"Airflow metadata database migrated in {time.monotonic() - started:.1f}s ({airflow_env.HOME})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--quick", action="store_true", help="few trials, N=10,100, 20s steady state; no report")
    parser.add_argument("--trials", type=int, default=100, help="trials per latency path (>= 50)")
    parser.add_argument("--sizes", type=lambda s: [int(x) for x in s.split(",")], default=[10, 100, 500, 1000])
    parser.add_argument("--upstream-max", type=int, default=100,
                        help="largest N the upstream executor is run at unconditionally; larger N only if "
                        "N x measured per-process RSS fits in half the available memory")
    parser.add_argument("--recheck-interval", type=float, default=2.0, help="for the RoleBinding-removed path")
    parser.add_argument("--revoke-spacing", type=float, default=0.25)
    parser.add_argument("--steady-seconds", type=int, default=120)
    parser.add_argument("--check-iterations", type=int, default=200_000)
    parser.add_argument("--miss-iterations", type=int, default=300)
    parser.add_argument("--skip-latency", action="store_true")
    parser.add_argument("--skip-scale", action="store_true")
    parser.add_argument("--output", type=Path, default=DOC)
    parser.add_argument("--json", type=Path, help="also write the raw results here")
    args = parser.parse_args()
    if args.child:
        child_main(args.child)
        return
    if args.quick:
        args.trials, args.sizes, args.steady_seconds = 10, [10, 100], 20
        args.check_iterations, args.miss_iterations = 20_000, 50
    t_bench = time.monotonic()
    log(f"bench: trials={args.trials} sizes={args.sizes} steady={args.steady_seconds}s; "
        f"{os.cpu_count()} CPUs, {mem_available() / 2**30:.1f} GiB available")
    prepare_airflow_home()
    bench = Bench(args)
    try:
        if not args.skip_latency:
            bench.start_cluster()
            try:
                bench.run_latency()
            finally:
                bench.stop_cluster()
        if not args.skip_scale:
            bench.run_scale()
    finally:
        bench.cleanup()
    wall = time.monotonic() - t_bench
    info = machine_info(apiserver_version())
    results = {"args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
               "wall_s": wall, "machine": info, **bench.results}
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, default=str))
    print()
    print(summary_table(results))
    log(f"bench finished in {wall:.0f}s")
    if not args.quick:
        args.output.write_text(render(results))
        log(f"wrote {args.output.relative_to(REPO) if args.output.is_relative_to(REPO) else args.output}")


if __name__ == "__main__":
    main()
