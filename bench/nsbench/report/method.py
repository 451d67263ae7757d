"""The fixed parts of the page: how to reproduce a run, and how each number is measured."""

from __future__ import annotations

from typing import Any

from ..common import OTHER_LOAD_FLAG


def method_section(results: dict[str, Any]) -> list[str]:
    args = results["args"]
    return [
        "## Reproduce",
        "",
        "```sh",
        "make venv controlplane   # once: a virtualenv with the project (.[test]) and the control plane",
        "make bench               # = python -m bench.nsbench from the repository root, with that venv",
        "python -m bench.nsbench --quick     # smoke run (few trials, N=10,100), writes nothing",
        "python -m bench.nsbench --json raw.json  # also keep every sample",
        "python -m bench.nsbench --render raw.json  # rewrite this page from kept samples",
        "```",
        "",
        f"This run: `--trials {args['trials']} --sizes {','.join(map(str, args['sizes']))} "
        f"--upstream-max {args['upstream_max']} --recheck-interval {args['recheck_interval']:g} "
        f"--steady-seconds {args['steady_seconds']} --steady-bucket {args.get('steady_bucket', 10)} "
        f"--repeats {args.get('repeats', 1)}"
        + "".join(
            f" --{name.replace('_', '-')} {args[name]:g}"
            for name in ("drain_cadence", "drain_trials", "loop_tasks", "huge")
            if name in args
        )
        + "`.",
        "",
        "## Method",
        "",
        "- Every measured executor runs in a process of its own (`python -m bench.nsbench --child`), "
        "configured with the "
        "same `AIRFLOW__*` environment as the integration tests' `make_executor` fixture (kubeconfig of the "
        "scheduler ServiceAccount, pod template). The parent process owns the "
        "control "
        "plane, makes every change with the admin client, and reads kube-apiserver's own `/metrics`.",
        "- Latency: the parent takes `t0 = CLOCK_MONOTONIC` immediately before the admin request (label "
        "PATCH, namespace DELETE, RoleBinding DELETE). In the executor process, hooks wrap the pod-watcher "
        "reconciler "
        "(`WatcherSet.reconcile`), the state table's `put` and the scheduler's `run_pod_async`, and take a "
        "timestamp of the same clock right *after* the wrapped call returns: a watcher counts as running "
        "once "
        "its thread has been started and it is in `kube_watchers`, as stopped once it left `kube_watchers` "
        "and its watch connection was shut down, a pod as created once the API server answered the create. "
        "No polling is involved, so there is no polling error; the label PATCH round trip is included "
        "in every label row (it is shown separately). Namespaces are fresh for every trial; trials are "
        "sequential with a random 20-60 ms pause; the first 3 are warm-up and dropped. p50/p99 are "
        "nearest-rank (with 100 samples p99 is the 99th smallest).",
        "- Label → first pod: right after the label PATCH returns, the executor is asked to queue a task "
        "whose `pod_override` names that namespace and to run one `sync()`; the time is taken when "
        "`create_namespaced_pod` has returned. The pre-launch check answers from the table when the "
        "namespace's watch event has been processed, and otherwise looks on demand (one GET + one review). "
        "Seen by its watcher: the same trial, until the namespace's pod watcher hands its first event "
        "for the pod on to upstream's handling (`process_status`), the end-to-end path of issue 12.",
        "- Namespace deleted: the watcher stops when the namespace turns `Terminating` (its pods are no "
        "longer "
        "launchable); the harness then finishes the deletion as a namespace controller would.",
        "- RoleBinding removed: a second executor with a short `access_recheck_interval` watches its own "
        "labelled namespaces; RoleBindings are deleted one every "
        f"{args['revoke_spacing']:g} s at random phases of the re-check schedule, so the latency is spread "
        "between 0 and the bound. Beside it, with the RBAC watch granted (the scheduler identity bound "
        "to `RBAC_WATCH_RULE`, as deploy/rbac-watch.yaml does) a third executor at default settings; "
        "and, without it, the latency executor (default `access_recheck_interval` 60 s): RoleBinding "
        "deleted, then, once the scheduler's own access review says no, a task launched there "
        "(`execute_async` + one `sync()`), timed from the DELETE and from the launch.",
        "- Drain: a watched namespace gets a task (pod created), loses its label (state `draining`), then "
        "the admin writes its pod's status `Succeeded` (`set_pod_phase`, a GET and the status PATCH, as a "
        "kubelet would; t0 is taken before the GET). The executor's `sync()` runs on a thread, "
        "`--drain-cadence` seconds after the previous one ended, started at a random phase before t0; "
        "the watcher's stop is taken by the "
        "reconciler hook, the task leaving the placement by a hook on the placement's change callback. "
        "The 3 warm-up trials first wait 2 s with no `sync()` at all, to see whether the pod's event alone "
        "ends the drain.",
        "- Validation cost: `timeit` in the executor process (best and median of 5 runs). The forced miss "
        "is `discovery.invalidate()`: it drops the cached review and looks again (one GET, one review), "
        "the same work `check()` does at launch time for a namespace labelled a moment ago (watch event "
        "not processed yet).",
        "- Scale: a fresh control plane per N; N namespaces, each labelled and given a RoleBinding to a "
        "ClusterRole with the pod rights, are created before the executor starts. Times are from the call to "
        "`executor.start()`: when it returns, when every namespace has a live watcher in `kube_watchers`, "
        "and when kube-apiserver reports N+1 open namespaced pod WATCH requests "
        "(`apiserver_longrunning_requests`; polled every 0.2 s after `start()` returned — not during it, "
        "because a scrape of the whole `/metrics` text costs CPU of its own). Requests are the delta of "
        "`apiserver_request_total` for namespaces, pods and self-subject reviews from before `start()` to 2 "
        "s after all watches were open (the API server counts a WATCH when it ends, so open watches are "
        "counted "
        "separately). Processes, threads, RSS, PSS of the executor's process tree (the executor, its two "
        "`multiprocessing.Manager` processes and, upstream, its watcher processes) come from `/proc` via "
        "psutil. Both executors watch the N namespaces plus the home namespace. Upstream runs with "
        "`multi_namespace_mode=True` and `multi_namespace_mode_namespace_list` set to the same N+1 "
        "namespaces.",
        "- RSS double-counts the pages forked watcher processes share with their parent, so PSS (each "
        "shared page "
        "split between its sharers) is the fairer total; both are reported.",
        "- Upstream beyond `--upstream-max` is run only if N x its measured per-process PSS fits in half of "
        "the available memory; otherwise it is run at the largest N that fits (its own row, measured) and "
        "the row at N is a linear extrapolation (least squares over the measured sizes), marked so, "
        "beside that measured row.",
        "- Steady state: the N=1000 executor keeps running with the defaults `access_recheck_interval=60`, "
        "`recheck_jitter=0.1`; `/metrics` is read every 10 s, and CPU of the executor's process tree, "
        "kube-apiserver and etcd is read from `/proc` at the same moments. Pod watch (re)opens are timed "
        "from "
        "the watcher's own log line (`and now my watch begins`).",
        "- Watch open: the executor process also wraps each watcher's pod WATCH call and takes the time "
        "when it returns, i.e. when the API server has answered with the response headers and the watch "
        "is open there. Labelled at once: `--burst` fresh namespaces are labelled by 16 admin PATCHes in "
        "flight; each is timed from its own PATCH to its own watch open, with the PATCH answer, state "
        "`permitted` and the watcher start as context rows.",
        "- Floor: in each latency run, on the same control plane and before the executor starts, a bare "
        "kubernetes client with the scheduler's identity measures what no implementation can avoid: label "
        "PATCH → the namespace's ADDED event on a label-selector watch, one SelfSubjectRulesReview, one pod "
        "WATCH until the API server's response headers (with and without a new TCP + TLS connection). "
        "Ours is shown as that floor + overhead.",
        "- Repetitions (`--repeats`): the latency scenarios run once per repetition, each on a fresh control "
        "plane; p50 and p99 are the median of the runs' own, the p99 column beside it is its spread across "
        "runs (min-max), max is over all runs. Start-up runs once per N and repetition on a fresh control "
        "plane; the row is the run with the median time to all watches open, [min-max] over the runs.",
        "- Other load: once a second, the CPUs busy in `/proc/stat` minus the CPU of the bench's own "
        "process tree over the same interval (per process, with the CPU of the children it reaped, so a "
        "tree that exits is not counted twice). Runs whose mean other load exceeded "
        f"{OTHER_LOAD_FLAG} CPUs are flagged ⚠.",
        "",
    ]
