"""The last task of a draining namespace finishes -> its watcher stops.

A namespace is labelled, a task launched into it (its pod created), the label removed: the
namespace drains (no new tasks, the watcher stays while a task of ours is placed there). Then the
admin plays kubelet and writes the pod's status ``Succeeded`` (the harness's ``set_pod_phase``,
the status a kubelet writes; one GET and the status PATCH). The drain is decided from the
executor's task placement (discovery/placement.py); a task stops counting there once its
namespace's pod watcher has queued the pod's final result (executors/pod_results.py), and
leaves it in the executor's ``sync()``, which reports it. The child calls ``sync()`` on a thread
at a fixed cadence, as the scheduler's loop calls the executor's heartbeat, so that a drain that
still waited for it would show that wait.
"""

from __future__ import annotations

import random
import time

from ..common import fmt_p, log, ms_after
from ..context import Bench
from ..driver import Child
from ..probes import phase


def run_drain(bench: Bench, child: Child, names: list[str], warm: int) -> None:
    """Per namespace (labelled, watched): launch, unlabel, finish the pod; time until the stop."""
    phase("drain")
    cadence = bench.args.drain_cadence
    lat = bench.run["latency"]
    to_stop: list[float] = []
    to_done: list[float] = []
    done_to_stop: list[float] = []
    without_sync: list[bool] = []
    for i, ns in enumerate(names):
        answer = child.call("launch", ns=ns)
        t_unlabel = time.monotonic()
        bench.label(ns, None)
        drained = child.call("wait", ns=ns, kind="state:draining", after=t_unlabel)["t"] is not None
        if answer["pod"] is None or not drained:
            # A trial that could not be set up counts as one that never happened.
            log(f"drain trial in {ns} not set up: pod {answer['pod']}, draining {drained}")
            if i >= warm:
                for samples in (to_stop, to_done, done_to_stop):
                    samples.append(float("nan"))
            continue
        if i < warm:
            # Does the watcher's event alone complete the drain? No sync() runs here.
            t0 = time.monotonic()
            bench.cluster.set_pod_phase(ns, answer["pod"], "Succeeded")
            time.sleep(2.0)
            without_sync.append(child.call("first", items=[[ns, "watch-stop", t0]])["t"][0] is not None)
            child.call("sync_loop", cadence=cadence)
            child.call("wait", ns=ns, kind="watch-stop", after=t0)
            child.call("sync_loop", cadence=0)
            continue
        child.call("sync_loop", cadence=cadence)
        time.sleep(random.uniform(0, cadence))  # the PATCH falls anywhere in the loop's period
        t0 = time.monotonic()
        bench.cluster.set_pod_phase(ns, answer["pod"], "Succeeded")
        stopped = child.call("wait", ns=ns, kind="watch-stop", after=t0)["t"]  # waits up to 10 s
        done = child.call("first", items=[[ns, "no-tasks", t0]])["t"][0]
        child.call("sync_loop", cadence=0)
        to_stop.append(ms_after(stopped, t0))
        to_done.append(ms_after(done, t0))
        done_to_stop.append(ms_after(stopped, done) if done is not None else float("nan"))
    lat["drain_to_stopped"] = to_stop
    lat["drain_to_task_done"] = to_done
    lat["drain_task_done_to_stopped"] = done_to_stop
    lat["drain_cadence_s"] = cadence
    lat["drain_stopped_without_sync"] = sum(without_sync)
    lat["drain_without_sync_trials"] = len(without_sync)
    log(
        f"last pod finished -> watcher stopped (sync every {cadence:g} s): p50 {fmt_p(to_stop, 50)} "
        f"p99 {fmt_p(to_stop, 99)} ms; task out of the placement -> stopped p50 "
        f"{fmt_p(done_to_stop, 50)} p99 {fmt_p(done_to_stop, 99)} ms; stopped without sync(): "
        f"{sum(without_sync)} of {len(without_sync)}"
    )
