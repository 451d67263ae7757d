"""A namespace's RoleBinding removed: seen by the RBAC watch, or by the 403 of a pod create.

Both at default settings (``access_recheck_interval`` 60 s), so the periodic re-check, which the
polled row of latency.py measures with a short interval, plays no part in either:

- with the RBAC watch granted (the scheduler identity bound to ``RBAC_WATCH_RULE``, as
  deploy/rbac-watch.yaml does): DELETE sent -> state ``forbidden`` -> watcher stopped;
- without it: DELETE sent, then a task launched into the namespace (``execute_async`` + one
  ``sync()``); the create's 403 makes the executor re-check the namespace at once. What the task
  got (refused, a pod, deferred) is counted.
"""

# The kubernetes client is imported where used, like everywhere in the bench.
# ruff: noqa: PLC0415

from __future__ import annotations

import contextlib
import random
import threading
import time
from collections import Counter
from collections.abc import Callable

from airflow_provider_nsdiscovery.discovery.permissions import RBAC_WATCH_RULE

from ..common import RBAC_WATCH_ROLE, WATCHED_SELECTOR_KEY, fmt_p, log, ms_after
from ..context import Bench
from ..driver import Child, Recorder
from ..probes import phase

BINDING = "airflow-task-pods"  # what Bench.grant creates in each namespace


def run_revoke_watched(bench: Bench, names: list[str], warm: int) -> None:
    """RoleBinding removed -> ``forbidden`` and -> watcher stopped, the RBAC watch granted."""
    phase("RoleBinding removed, RBAC watched")
    grant_rbac_watch(bench, granted=True)
    try:
        child = bench.spawn("revoke-watched", "ours", bench.executor_env("ours", WATCHED_SELECTOR_KEY))
        start = child.call("start", expect=[bench.home, *names])
        deadline = time.monotonic() + 30
        while not child.call("access_watched")["watched"]:
            if time.monotonic() > deadline:
                raise TimeoutError("the executor did not start watching RBAC objects within 30 s")
            time.sleep(0.1)
        log(f"RBAC-watched executor (default settings) started with {start['live']} watchers")
        seen, stop_floor = bare_binding_watch(bench)
        forbidden, stopped, floor = [], [], []
        for i, ns in enumerate(names):
            time.sleep(random.uniform(0.05, 0.1))
            t0 = time.monotonic()
            bench.rbac.delete_namespaced_role_binding(BINDING, ns)
            tf = child.call("wait", ns=ns, kind="state:forbidden", after=t0)["t"]
            ts = child.call("wait", ns=ns, kind="watch-stop", after=t0)["t"]
            te = seen.wait(ns, "deleted", t0, timeout=5)
            if i >= warm:
                forbidden.append(ms_after(tf, t0))
                stopped.append(ms_after(ts, t0))
                floor.append(ms_after(te, t0))
        stop_floor()
        bench.close_child(child)
    finally:
        grant_rbac_watch(bench, granted=False)
    lat = bench.run["latency"]
    lat["revoke_watched_to_forbidden"] = forbidden
    lat["revoke_watched_to_stopped"] = stopped
    bench.run["floor"]["binding_deleted_event"] = floor
    log(
        f"RoleBinding removed -> forbidden, RBAC watched: p50 {fmt_p(forbidden, 50)} "
        f"p99 {fmt_p(forbidden, 99)} ms; -> watcher stopped p50 {fmt_p(stopped, 50)} "
        f"p99 {fmt_p(stopped, 99)} ms"
    )


def bare_binding_watch(bench: Bench) -> tuple[Recorder, Callable[[], None]]:
    """The floor: a bare RoleBinding watch (kubernetes client, the scheduler identity), recording
    when each namespace's DELETED event is read. Returns the record and how to stop the watch."""
    from kubernetes import client, watch

    seen = Recorder()
    rbac = client.RbacAuthorizationV1Api(client.ApiClient(bench.identity.api_client.configuration))
    version = rbac.list_role_binding_for_all_namespaces().metadata.resource_version
    stream = watch.Watch()

    def read() -> None:
        # Stopping the stream drops its connection under the reader: that ends the loop with an error.
        with contextlib.suppress(Exception):
            for event in stream.stream(
                rbac.list_role_binding_for_all_namespaces, resource_version=version, timeout_seconds=600
            ):
                if event["type"] == "DELETED":
                    seen.add(event["object"].metadata.namespace, "deleted", time.monotonic())

    threading.Thread(target=read, name="floor-binding-watch", daemon=True).start()
    time.sleep(0.2)  # the watch request is on the wire before the first DELETE
    return seen, stream.stop


def grant_rbac_watch(bench: Bench, *, granted: bool) -> None:
    """Bind (or unbind) the scheduler identity to ``RBAC_WATCH_RULE`` the way deploy/rbac-watch.yaml
    does; returns once the API server's authorizer honours the change."""
    from kubernetes import client

    if granted:
        rule = client.V1PolicyRule(
            api_groups=RBAC_WATCH_RULE["apiGroups"],
            resources=RBAC_WATCH_RULE["resources"],
            verbs=RBAC_WATCH_RULE["verbs"],
        )
        bench.rbac.create_cluster_role(
            client.V1ClusterRole(metadata=client.V1ObjectMeta(name=RBAC_WATCH_ROLE), rules=[rule])
        )
        bench.rbac.create_cluster_role_binding(
            client.V1ClusterRoleBinding(
                metadata=client.V1ObjectMeta(name=RBAC_WATCH_ROLE),
                role_ref=client.V1RoleRef(
                    api_group="rbac.authorization.k8s.io", kind="ClusterRole", name=RBAC_WATCH_ROLE
                ),
                subjects=[
                    client.RbacV1Subject(kind="ServiceAccount", name="scheduler", namespace=bench.home)
                ],
            )
        )
    else:
        bench.rbac.delete_cluster_role_binding(RBAC_WATCH_ROLE)
        bench.rbac.delete_cluster_role(RBAC_WATCH_ROLE)
    authz = client.AuthorizationV1Api(bench.identity.api_client)
    review = client.V1SelfSubjectAccessReview(
        spec=client.V1SelfSubjectAccessReviewSpec(
            resource_attributes=client.V1ResourceAttributes(
                group=RBAC_WATCH_RULE["apiGroups"][0], resource="rolebindings", verb="watch"
            )
        )
    )
    deadline = time.monotonic() + 15
    while bool(authz.create_self_subject_access_review(review).status.allowed) != granted:
        if time.monotonic() > deadline:
            raise TimeoutError(f"the RBAC watch grant did not become {granted}")
        time.sleep(0.02)


def run_revoke_then_launch(bench: Bench, child: Child, names: list[str], warm: int) -> None:
    """Without RBAC watch rights, default interval: RoleBinding removed, then a task launched there.

    The launch waits until the API server's authorizer has dropped the binding (the scheduler's own
    SelfSubjectAccessReview says no), so that the create meets the 403 it is about.
    """
    phase("RoleBinding removed, then a launch")
    lat = bench.run["latency"]
    keys = ("delete_to_forbidden", "launch_to_forbidden", "delete_to_stopped", "launch_to_stopped")
    samples: dict[str, list[float]] = {key: [] for key in keys}
    outcome: Counter[str] = Counter()
    example = ""
    for i, ns in enumerate(names):
        time.sleep(random.uniform(0.02, 0.06))
        t0 = time.monotonic()
        bench.rbac.delete_namespaced_role_binding(BINDING, ns)
        bench.wait_access(ns, allowed=False)
        answer = child.call("launch", ns=ns)
        tf = child.call("wait", ns=ns, kind="state:forbidden", after=t0)["t"]
        ts = child.call("wait", ns=ns, kind="watch-stop", after=t0)["t"]
        if i < warm:
            continue
        t_launch = answer["t_recv"]
        samples["delete_to_forbidden"].append(ms_after(tf, t0))
        samples["launch_to_forbidden"].append(ms_after(tf, t_launch))
        samples["delete_to_stopped"].append(ms_after(ts, t0))
        samples["launch_to_stopped"].append(ms_after(ts, t_launch))
        if tf is not None and tf < t_launch:
            outcome["forbidden before the launch (periodic re-check)"] += 1
        if answer["t_created"] is not None:
            outcome["pod created"] += 1
        elif answer["refused"] is not None:
            outcome["refused, no pod"] += 1
            example = example or answer["refused"]
        else:
            outcome["neither refused nor created (deferred)"] += 1
    for key in keys:
        lat[f"launch403_{key}"] = samples[key]
    lat["launch403_outcome"] = dict(outcome)
    lat["launch403_example"] = example
    got = samples["launch_to_forbidden"]
    log(
        f"RoleBinding removed, then a launch: launch -> forbidden p50 {fmt_p(got, 50)} "
        f"p99 {fmt_p(got, 99)} ms; outcomes {dict(outcome)}"
    )
