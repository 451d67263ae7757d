"""The parent's side of a run: the control plane, the admin client, namespaces, executor children.

Scenarios (scenarios/) are functions of a ``Bench``; they put what they measure into ``bench.run``
(one record per repetition of the latency scenarios) or ``bench.results``.
"""

# Imports inside functions are deliberate: see driver.py (Airflow) and harness.py (the test harness).
# ruff: noqa: PLC0415

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from .common import POD_TEMPLATE, SELECTOR_KEY, TASK_ROLE, log
from .driver import Child
from .harness import ApiMetrics, resolve_cluster, scheduler_rules
from .probes import phase


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.workdir = Path(tempfile.mkdtemp(prefix="nsd-bench-"))
        self.results: dict[str, Any] = {
            "latency_runs": [],
            "scale": [],
            "steady": None,
        }
        # The record of the latency repetition running now (latency, validation, floor, other load).
        self.run: dict[str, Any] = {}
        self.cluster: Any = None
        self.children: list[Child] = []

    # -- control plane ---------------------------------------------------------------------------

    def start_cluster(self) -> None:
        from kubernetes import client

        namespace_read_rules, pod_rules = scheduler_rules()
        cluster = resolve_cluster()
        if cluster is None:
            sys.exit("no control plane: run `make controlplane` first (tests/harness/build-controlplane.sh)")
        phase("setup")
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
            self.home,
            "scheduler",
            cluster_rules=namespace_read_rules,
            namespace_rules={self.home: pod_rules},
        )
        self.rbac.create_cluster_role(
            client.V1ClusterRole(metadata=client.V1ObjectMeta(name=TASK_ROLE), rules=list(pod_rules))
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
        phase("setup")
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
                role_ref=client.V1RoleRef(
                    api_group="rbac.authorization.k8s.io",
                    kind="ClusterRole",
                    name=TASK_ROLE,
                ),
                subjects=[client.RbacV1Subject(kind="ServiceAccount", name="scheduler", namespace=self.home)],
            ),
        )

    def wait_access(self, namespace: str, *, allowed: bool, timeout: float = 15.0) -> None:
        from kubernetes import client

        authz = client.AuthorizationV1Api(self.identity.api_client)
        review = client.V1SelfSubjectAccessReview(
            spec=client.V1SelfSubjectAccessReviewSpec(
                resource_attributes=client.V1ResourceAttributes(
                    namespace=namespace, verb="watch", resource="pods"
                )
            )
        )
        deadline = time.monotonic() + timeout
        while bool(authz.create_self_subject_access_review(review).status.allowed) != allowed:
            if time.monotonic() > deadline:
                raise TimeoutError(f"RBAC in {namespace} did not become allowed={allowed}")
            time.sleep(0.02)

    def label(self, name: str, value: str | None, key: str = SELECTOR_KEY) -> None:
        self.core.patch_namespace(
            name,
            {"metadata": {"labels": {key: value}}},
            _content_type="application/merge-patch+json",
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
            env.update({f"KUBERNETES_NAMESPACE_DISCOVERY__{k.upper()}": v for k, v in discovery.items()})
        return {f"AIRFLOW__{k}": v for k, v in env.items()}

    def spawn(self, name: str, impl: str, env: dict[str, str]) -> Child:
        child = Child(name, impl, env, random.randint(10_000, 10_000_000), self.workdir)
        self.children.append(child)
        return child

    def close_child(self, child: Child) -> None:
        child.close()
        self.children.remove(child)

    def cleanup(self) -> None:
        self.stop_cluster()
        if self.args.keep:
            log(f"kept child logs in {self.workdir}")
        else:
            shutil.rmtree(self.workdir, ignore_errors=True)
