"""The page's sections on the scheduler loop's cost per task and on the one start-up at a huge N."""

from __future__ import annotations

from typing import Any

from ..common import MIB, fmt_ms, fmt_s, stats_of
from .runs import load_note
from .tables import md_table

MODES = {
    "on": "DynamicNamespace, pre-launch check on",
    "off": "DynamicNamespace, check bypassed (upstream's `_build_pod_request`)",
    "upstream": "upstream multi_namespace_mode",
}


def loop_cost_section(results: dict[str, Any]) -> list[str]:
    records = sorted(results.get("loop_cost") or [], key=lambda r: (r["n"], r["impl"] != "ours"))
    if not records:
        return []
    rows = []
    for r in records:
        for mode, m in r["modes"].items():
            total, check = stats_of(m["total_ms"]), stats_of(m["check_ms"])
            create, queue = stats_of(m.get("create_request_ms", [])), stats_of(m.get("execute_async_ms", []))
            rest = [
                t - c - q - (k if k is not None else 0.0)
                for t, c, q, k in zip(
                    m["total_ms"],
                    m.get("create_request_ms", []),
                    m.get("execute_async_ms", []),
                    m["check_ms"] or [None] * len(m["total_ms"]),
                    strict=False,
                )
            ]
            rows.append(
                [
                    str(r["n"]),
                    MODES.get(mode, mode),
                    str(total["n"]),
                    fmt_ms(total["p50"]),
                    fmt_ms(total["p99"]),
                    f"{fmt_ms(check['p50'])} / {fmt_ms(check['p99'])}" if check["n"] else "—",
                    fmt_ms(create["p50"]),
                    fmt_ms(queue["p50"]),
                    fmt_ms(stats_of(rest)["p50"]),
                    str(r["failed"]),
                    str(r["watchers"]),
                    load_note(r.get("other_load")),
                ]
            )
    ours = [r for r in records if r["impl"] == "ours"]
    upstream = [r for r in records if r["impl"] == "upstream"]
    out = [
        "### 5. Scheduler loop cost per task, every watcher alive",
        "",
        "Per task, in the scale run's executor after start-up: `execute_async(key, command, "
        "executor_config={pod_override naming a permitted namespace})` and then the `sync()` that creates "
        "its pod (a real API request; `worker_pods_creation_batch_size` 1, so one pod per `sync()`), the "
        "namespaces taken in turn. Ours alternates task by task between the check on and the check "
        "bypassed, in the same process: bypassed = the scheduler's `_build_pod_request` bound to "
        "upstream's `AirflowKubernetesScheduler._build_pod_request` (no check, no task placement). "
        "The check's share = time in our `_build_pod_request` beyond upstream's inside it; the pod "
        "create request is timed on its own, the rest of `sync()` is what remains (building the pod, "
        "the watchers' events, upstream's bookkeeping). Every namespace used got one untimed pod right "
        "before its timed ones (a create in a namespace with none in about 30 s is slow on the API "
        "server's side, whoever sends it): " + _first_pods(records),
        "",
        md_table(
            [
                "N",
                "executor",
                "tasks",
                "p50 ms",
                "p99 ms",
                "of which our check p50 / p99 ms",
                "pod create request p50 ms",
                "`execute_async` p50 ms",
                "rest of `sync()` p50 ms",
                "tasks failed",
                "watchers",
                "other CPUs",
            ],
            rows,
        ),
        "",
    ]
    huge_n = (results.get("huge") or {}).get("n")
    scaled = [r for r in ours if r["n"] != huge_n]  # the once-only huge N is read on its own
    if scaled and upstream:
        big, big_up = scaled[-1], upstream[-1]
        on, off = stats_of(big["modes"]["on"]["total_ms"]), stats_of(big["modes"]["off"]["total_ms"])
        up = stats_of(big_up["modes"]["upstream"]["total_ms"])
        out += [
            f"At the largest N of the scale runs (ours N={big['n']}; upstream N={big_up['n']}, its largest "
            f"run): p50 per task {fmt_ms(on['p50'])} ms with the check, {fmt_ms(off['p50'])} ms without, "
            f"{fmt_ms(up['p50'])} ms upstream.",
            "",
        ]
    return out


def _first_pods(records: list[dict[str, Any]]) -> str:
    """The create request of each namespace's first pod, from ours (which runs first in each cluster,
    so its namespaces are fresh)."""
    parts = [
        f"N={r['n']} p50 {fmt_ms(st['p50'])} ms over {st['n']}"
        for r in records
        if r["impl"] == "ours"
        for st in [stats_of(r.get("first_pod_create_request_ms", []))]
        if st["n"]
    ]
    return (
        "the create request of a namespace's first pod (ours, fresh namespaces) took "
        + "; ".join(parts)
        + ", against the p50 of later ones in the table."
        if parts
        else "no first-pod numbers recorded."
    )


def huge_section(results: dict[str, Any]) -> list[str]:
    huge = results.get("huge")
    if not huge:
        return []
    n = huge["n"]
    ours = next((r for r in results["scale"] if r["n"] == n and r["impl"] == "ours"), None)
    skipped = next((r for r in results["scale"] if r["n"] == n and "skipped" in r), None)
    out = [f"### 6. Once at N={n}: ours only", ""]
    if ours is not None:
        tree = ours["tree"]
        out += [
            f"Creating {n} labelled namespaces, each with its RoleBinding (16 requests in flight), took "
            f"{huge['create_s']:.1f} s. Measured once, not repeated: `start()` returned after "
            f"{ours['start_returned_s']:.2f} s (discovery {fmt_s(ours.get('discovery_s'))}); all "
            f"{ours['watchers']} watchers running after {fmt_s(ours.get('all_live_s'))}; all "
            f"{ours['open_watches']} pod watches open at the API server after "
            f"{fmt_s(ours.get('all_open_s'))}; "
            f"{tree['processes']} processes, {tree['threads']} threads, PSS {tree['pss'] / MIB:,.0f} MiB, "
            f"RSS {tree['rss'] / MIB:,.0f} MiB; "
            f"{sum(ours['requests'].values())} completed API requests until then "
            f"({', '.join(f'{v} {k}' for k, v in sorted(ours['requests'].items())) or 'none'}); other load "
            f"{load_note(ours.get('other_load'))} CPUs. The same numbers are the N={n} row of the scale "
            "table.",
            "",
        ]
    if skipped is not None:
        out += [f"Upstream: {skipped['skipped']}.", ""]
    return out
