"""The physical floor: what a bare kubernetes client gets from the same API server in the same run.

Our paths are shown as floor + overhead: label -> namespace watch event and one access review are
what discovery cannot avoid before it starts a watcher, one pod watch opened is what each watcher
cannot avoid before it sees its pods. The client is the scheduler identity's, like the executor's.
"""

# ruff: noqa: PLC0415 - the kubernetes client is imported where used, like everywhere in the bench

from __future__ import annotations

import contextlib
import random
import threading
import time
from typing import Any

from ..common import fmt_p, log, ms_after
from ..context import Bench
from ..driver import Recorder
from ..probes import phase

FLOOR_KEY = "nsd-floor"


def run_floor(bench: Bench) -> None:
    from kubernetes import client

    trials, warm = bench.args.trials, 3
    names = [f"floor-{i:03d}" for i in range(trials + warm)]
    bench.create_namespaces(names, None, grant=True)
    phase("floor (bare client)")
    api = bench.identity.api_client
    floor: dict[str, list[float]] = {
        "label_to_ns_event": _label_to_event(bench, client.CoreV1Api(api), names, warm),
        "rules_review": _rules_reviews(client.AuthorizationV1Api(api), names, warm),
        "pod_watch_open": _pod_watch_opens(api.configuration, names, warm, fresh=True),
        "pod_watch_open_warm_connection": _pod_watch_opens(api.configuration, names, warm, fresh=False),
    }
    bench.run["floor"] = floor
    log(
        "floor (bare client): "
        + ", ".join(f"{k} p50 {fmt_p(v, 50)} p99 {fmt_p(v, 99)} ms" for k, v in floor.items())
    )


def _label_to_event(bench: Bench, core: Any, names: list[str], warm: int) -> list[float]:
    """Label PATCH sent -> the namespace's ADDED event read from a label-selector watch."""
    from kubernetes import watch

    seen = Recorder()
    selector = f"{FLOOR_KEY}=true"
    version = core.list_namespace(label_selector=selector).metadata.resource_version
    stream = watch.Watch()
    ready = threading.Event()

    def read() -> None:
        ready.set()
        # Stopping the stream drops its connection under the reader: that ends the loop with an error.
        with contextlib.suppress(Exception):
            for event in stream.stream(
                core.list_namespace, label_selector=selector, resource_version=version, timeout_seconds=600
            ):
                if event["type"] == "ADDED":
                    seen.add(event["object"].metadata.name, "added", time.monotonic())

    reader = threading.Thread(target=read, name="floor-namespace-watch", daemon=True)
    reader.start()
    ready.wait(10)
    time.sleep(0.2)  # the watch request is on the wire before the first label
    out = []
    for i, ns in enumerate(names):
        time.sleep(random.uniform(0.02, 0.06))
        t0 = time.monotonic()
        bench.label(ns, "true", key=FLOOR_KEY)
        t = seen.wait(ns, "added", t0, timeout=10)
        if i >= warm:
            out.append(ms_after(t, t0))
    stream.stop()
    return out


def _rules_reviews(authz: Any, names: list[str], warm: int) -> list[float]:
    """One SelfSubjectRulesReview round trip (what discovery asks per namespace), on a warm connection."""
    from kubernetes import client

    out = []
    for i, ns in enumerate(names):
        review = client.V1SelfSubjectRulesReview(spec=client.V1SelfSubjectRulesReviewSpec(namespace=ns))
        t0 = time.monotonic()
        authz.create_self_subject_rules_review(review)
        if i >= warm:
            out.append(ms_after(time.monotonic(), t0))
    return out


def _pod_watch_opens(configuration: Any, names: list[str], warm: int, *, fresh: bool) -> list[float]:
    """Pod WATCH request sent -> the API server's response headers (the watch is open there).

    Every watch gets a client of its own (an early-closed watch response cannot give its connection
    back). ``fresh``: TCP + TLS set-up is part of the time, as for a watcher's first watch; otherwise
    the connection is set up beforehand by a GET /version.
    """
    from kubernetes import client

    out = []
    for i, ns in enumerate(names):
        api = client.ApiClient(configuration)
        if not fresh:
            client.VersionApi(api).get_code()
        t0 = time.monotonic()
        response = client.CoreV1Api(api).list_namespaced_pod(
            ns, watch=True, timeout_seconds=30, _preload_content=False
        )
        t = time.monotonic()
        response.close()
        api.close()
        if i >= warm:
            out.append(ms_after(t, t0))
    return out
