"""The numbers of the page as table rows: latency (across runs, beside the floor), validation cost,
scale (ours vs upstream, measured or extrapolated). The steady state is report/steady.py."""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from ..common import GOAL_CHECK_HIT_US, MIB, fmt_ms, per_call, percentile, stats_of, watch_goal_ms
from .runs import across_runs, floor_p50, loaded


def md_table(head: list[str], rows: list[list[str]]) -> str:
    out = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    out.extend("| " + " | ".join(r) + " |" for r in rows)
    return "\n".join(out)


def forbidden_bound_ms(results: dict[str, Any], jitter: float = 0.1) -> float:
    """Worst case: a re-check falls just before the revocation, the next one is a full jittered
    interval later, seen on the engine's 0.25 s tick, plus one review round trip (the floor's
    p99 from the same run, when it was measured)."""
    review = results.get("floor", {}).get("rules_review", [])
    review_ms = percentile(review, 99) if review else 0.0
    return (float(results["latency"].get("recheck_interval", 2.0)) * (1 + jitter) + 0.25) * 1000 + review_ms


def latency_rows(
    results: dict[str, Any],
) -> list[tuple[str, dict[str, float], str, str]]:
    lat = results["latency"]
    if not lat:
        return []
    bound = forbidden_bound_ms(results)
    runs = [r["latency"] for r in results["latency_runs"]]
    goal = "p99"  # the number is the row's own: watch_goal_ms(key)
    spec = [
        ("label_to_watcher", "label applied → watcher running", goal),
        ("label_to_permitted", "label applied → state `permitted` (context)", ""),
        (
            "label_to_watch_open",
            "label applied → pod watch open (the API server answered the watcher's WATCH)",
            goal,
        ),
        (
            "burst_to_watch_open",
            f"{results['args'].get('burst', '?')} namespaces labelled at once → each one's pod watch open",
            goal,
        ),
        ("burst_patch_rtt", "of which: labelled at once → the admin's PATCH answered (context)", ""),
        ("burst_to_permitted", "of which: labelled at once → state `permitted` (context)", ""),
        ("burst_to_watcher", "of which: labelled at once → watcher thread started (context)", ""),
        (
            "label_to_pod",
            "label applied → first pod created (task launched right after the label)",
            goal,
        ),
        (
            "label_to_pod_seen",
            "label applied → first pod seen by the namespace's watcher (its first event for the pod)",
            goal,
        ),
        (
            "launch_only",
            "of which: `execute_async` + one `sync()` → pod created (context)",
            "",
        ),
        ("unlabel_to_stopped", "label removed → watcher stopped", goal),
        (
            "unlabel_to_thread_exit",
            "label removed → watcher thread exited (context)",
            "",
        ),
        ("delete_to_stopped", "namespace deleted → watcher stopped", goal),
        (
            "revoke_to_forbidden",
            f"RoleBinding removed → `forbidden`, without RBAC watch rights (access_recheck_interval "
            f"{lat.get('recheck_interval', 2):g} s, jitter 0.1)",
            f"≤ {bound:.0f} ms (bound)",
        ),
        (
            "revoke_to_stopped",
            "RoleBinding removed → watcher stopped, without RBAC watch rights (same interval)",
            f"≤ {bound:.0f} ms (bound)",
        ),
        *access_path_spec(lat, goal),
        (
            "label_patch_rtt",
            "admin label PATCH round trip (context: part of every label row)",
            "",
        ),
    ]
    rows = []
    for key, title, wanted in spec:
        if key not in lat:
            continue
        stats = across_runs([r[key] for r in runs if key in r])
        target = f"p99 < {watch_goal_ms(key):.0f} ms" if wanted == goal else wanted
        if not target:
            verdict = ""
        elif stats["missing"]:
            verdict = f"**missed** ({stats['missing']} never happened)"
        elif target.startswith("p99"):
            verdict = "met" if stats["p99"] < watch_goal_ms(key) else "**missed**"
        else:
            verdict = "met" if stats["max"] <= bound else "**missed**"
        rows.append((title, stats, target, verdict))
    return rows


def access_path_spec(lat: dict[str, Any], goal: str) -> list[tuple[str, str, str]]:
    """The rows of scenarios/revocation.py and scenarios/drain.py: (key, title, goal or "")."""
    no_watch = "without RBAC watch rights, access_recheck_interval 60 s: RoleBinding removed, a task launched"
    return [
        (
            "revoke_watched_to_forbidden",
            "RoleBinding removed → `forbidden`, RBAC watch granted (default settings)",
            goal,
        ),
        (
            "revoke_watched_to_stopped",
            "RoleBinding removed → watcher stopped, RBAC watch granted (context)",
            "",
        ),
        ("launch403_delete_to_forbidden", f"{no_watch} → `forbidden`, from the DELETE (context)", ""),
        (
            "launch403_launch_to_forbidden",
            "of which: from the launch (`execute_async` + `sync()`, whose create gets the 403) (context)",
            "",
        ),
        ("launch403_delete_to_stopped", f"{no_watch} → watcher stopped, from the DELETE (context)", ""),
        ("launch403_launch_to_stopped", "of which: from the launch (context)", ""),
        (
            "drain_to_stopped",
            "draining namespace, its last pod finished (status written) → watcher stopped, executor "
            f"`sync()` {lat.get('drain_cadence_s', 1.0):g} s after the last one ended",
            goal,
        ),
        (
            "drain_to_task_done",
            "of which: pod finished → the task no longer counted in the executor's placement (context)",
            "",
        ),
        ("drain_task_done_to_stopped", "of which: task no longer counted → watcher stopped (context)", ""),
    ]


FLOOR_ROWS = (
    ("label_to_ns_event", "label PATCH sent → namespace ADDED event on a label-selector watch"),
    ("rules_review", "one SelfSubjectRulesReview round trip (warm connection)"),
    ("pod_watch_open", "one pod WATCH opened, new connection (TCP + TLS + watch response headers)"),
    ("pod_watch_open_warm_connection", "one pod WATCH opened on a connection already set up"),
    ("binding_deleted_event", "RoleBinding DELETE sent → DELETED event on a bare RoleBinding watch"),
)


def floor_rows(results: dict[str, Any]) -> list[list[str]]:
    """The bare-client floor, then ours as floor + overhead (p50 of each)."""

    floor = results.get("floor") or {}
    if not floor:
        return []
    runs = [r.get("floor", {}) for r in results["latency_runs"]]
    rows = []
    for key, title in FLOOR_ROWS:
        if key in floor:
            st = across_runs([r[key] for r in runs if key in r])
            rows.append([title, str(st["n"]), fmt_ms(st["p50"]), fmt_ms(st["p99"]), fmt_ms(st["max"]), ""])
    base = floor_p50(floor.get("label_to_ns_event", [])) + floor_p50(floor.get("rules_review", []))
    lat = results["latency"]
    opened = base + floor_p50(floor.get("pod_watch_open", []))
    revoked = floor_p50(floor.get("binding_deleted_event", [])) + floor_p50(floor.get("rules_review", []))
    for key, title, ours_floor, what in (
        ("label_to_permitted", "ours: label applied → state `permitted`", base, "event + review"),
        ("label_to_watcher", "ours: label applied → watcher thread started", base, "event + review"),
        (
            "label_to_watch_open",
            "ours: label applied → pod watch open",
            opened,
            "event + review + new watch",
        ),
        (
            "revoke_watched_to_forbidden",
            "ours: RoleBinding removed → `forbidden` (RBAC watched)",
            revoked,
            "binding event + review",
        ),
    ):
        if key in lat and not math.isnan(ours_floor):
            st = across_runs([r["latency"][key] for r in results["latency_runs"] if key in r["latency"]])
            rows.append(
                [
                    title,
                    str(st["n"]),
                    fmt_ms(st["p50"]),
                    fmt_ms(st["p99"]),
                    fmt_ms(st["max"]),
                    f"floor ({what}) {fmt_ms(ours_floor)} + overhead {fmt_ms(st['p50'] - ours_floor)}",
                ]
            )
    return rows


def validation_rows(results: dict[str, Any]) -> list[list[str]]:
    val = results["validation"]
    if not val:
        return []
    miss, unsel = (
        stats_of(val["miss"]["samples_us"]),
        stats_of(val["unselected"]["samples_us"]),
    )
    calls_miss, calls_unsel = (
        len(val["miss"]["samples_us"]),
        len(val["unselected"]["samples_us"]),
    )
    hit = val["hit"]
    return [
        [
            "`discovery.check(ns)`, permitted namespace (cache hit)",
            f"{hit['best']:.2f} µs (median of 5 runs {hit['median']:.2f} µs; timeit, 5 x {hit['number']:,} "
            "calls)",
            "none",
            f"< {GOAL_CHECK_HIT_US:.0f} µs: " + ("met" if hit["best"] < GOAL_CHECK_HIT_US else "**missed**"),
        ],
        [
            "`check_pod_namespace(pod, discovery.check)` on a pod built by `_build_pod_request`",
            f"{val['pod_check']['best']:.2f} µs (median {val['pod_check']['median']:.2f} µs)",
            "none",
            "",
        ],
        [
            "`discovery.check('Team_A.prod')` (invalid name, refused without a look)",
            f"{val['invalid']['best']:.2f} µs",
            "none",
            "",
        ],
        [
            "`discovery.check(ns)`, miss: labelled namespace not yet in the table",
            f"p50 {miss['p50'] / 1000:.2f} ms, p99 {miss['p99'] / 1000:.2f} ms ({calls_miss} calls)",
            per_call(val["miss"]["api"], calls_miss),
            "",
        ],
        [
            "`discovery.check(ns)`, miss: unlabelled namespace (refused `not-selected`)",
            f"p50 {unsel['p50'] / 1000:.2f} ms, p99 {unsel['p99'] / 1000:.2f} ms ({calls_unsel} calls)",
            per_call(val["unselected"]["api"], calls_unsel),
            "",
        ],
        [
            "(context) upstream `_build_pod_request` for the same task",
            f"median {val['build_pod_us']:.0f} µs (200 calls)",
            "none",
            "",
        ],
    ]


def _fit(points: list[tuple[int, float]], n: int) -> float:
    """Linear least squares through the measured upstream sizes, evaluated at n."""
    if len(points) == 1:
        ((n0, v0),) = points
        return v0 / n0 * n
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    slope = sum((x - mx) * (y - my) for x, y in points) / sum((x - mx) ** 2 for x in xs)
    return my + slope * (n - mx)


def median_runs(scale: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One entry per (N, executor): the run with the median time to all watches open, with every
    run's times and other load beside it (``runs``)."""
    groups: dict[tuple[int, str], list[dict[str, Any]]] = defaultdict(list)
    out = []
    for r in scale:
        if "skipped" in r:
            out.append(r)
        else:
            groups[(r["n"], r["impl"])].append(r)
    for group in groups.values():
        ordered = sorted(group, key=lambda r: (r["all_open_s"] is None, r["all_open_s"] or 0.0))
        median = ordered[(len(ordered) - 1) // 2]
        runs = [
            {k: r.get(k) for k in ("all_open_s", "start_returned_s", "discovery_s", "other_load")}
            for r in group
        ]
        out.append({**median, "runs": runs})
    return sorted(out, key=lambda r: (r["n"], r["impl"]))


def _with_spread(value: float | None, runs: list[dict[str, Any]], key: str, prefix: str = "") -> str:
    if value is None:
        return "n/a"
    text = f"{prefix}{value:.2f}"
    values = [r[key] for r in runs if r.get(key) is not None]
    if len(runs) > 1:
        missing = len(runs) - len(values)
        text += f" [{min(values):.2f}-{max(values):.2f}]" if values else ""
        text += f" ({missing} runs never)" if missing else ""
    return text


def scale_load(r: dict[str, Any]) -> str:
    """Other load of the runs of a row: mean of the worst run, flagged when any run was loaded."""
    loads = [run["other_load"] for run in r.get("runs", []) if run.get("other_load")]
    if not loads:
        return "—"
    worst = max(loads, key=lambda load: float(load["other"]))
    flag = " ⚠" if any(loaded(load) for load in loads) else ""
    return f"{worst['other']:.2f}{flag}"


def scale_table(
    results: dict[str, Any],
) -> tuple[list[list[str]], dict[int, dict[str, dict[str, Any]]]]:
    """Rows for the scale table, and per N the numbers (measured or extrapolated) of both executors."""
    by_n: dict[int, dict[str, dict[str, Any]]] = defaultdict(dict)
    entries = median_runs(results["scale"])
    measured_up = [r for r in entries if r["impl"] == "upstream" and "skipped" not in r]
    for r in entries:
        if "skipped" in r:
            if not measured_up:
                continue
            n = r["n"]
            getters: tuple[tuple[str, Callable[[dict[str, Any]], Any]], ...] = (
                ("start_returned_s", lambda m: m["start_returned_s"]),
                ("all_open_s", lambda m: m["all_open_s"]),
                ("processes", lambda m: m["tree"]["processes"]),
                ("threads", lambda m: m["tree"]["threads"]),
                ("rss", lambda m: m["tree"]["rss"]),
                ("pss", lambda m: m["tree"]["pss"]),
                ("cpu_s", lambda m: m.get("cpu_s")),
            )
            fit = {
                key: _fit(points, n) if points else None
                for key, get in getters
                for points in [[(m["n"], get(m)) for m in measured_up if get(m) is not None]]
            }
            # Every measured run has its process tree: these two always have points.
            processes, threads = fit["processes"], fit["threads"]
            assert processes is not None
            assert threads is not None
            by_n[n]["upstream"] = {
                "n": n,
                "impl": "upstream",
                "extrapolated": True,
                "why": r["skipped"],
                "start_returned_s": fit["start_returned_s"],
                "all_open_s": fit["all_open_s"],
                "cpu_s": fit["cpu_s"],
                "requests_total": 0,
                "open_watches": n + 1,
                "tree": {
                    "processes": round(processes),
                    "threads": round(threads),
                    "rss": fit["rss"],
                    "pss": fit["pss"],
                },
            }
        else:
            by_n[r["n"]][r["impl"]] = {
                **r,
                "requests_total": sum(r["requests"].values()),
            }
    rows = []
    for n in sorted(by_n):
        for impl in ("ours", "upstream"):
            row = by_n[n].get(impl)
            if row is None:
                continue
            r = row
            x = "~" if r.get("extrapolated") else ""
            name = (
                "DynamicNamespace (threads)"
                if impl == "ours"
                else "upstream multi_namespace_mode (processes)"
                + (
                    f", the largest N that fits in half the memory (for N={r['largest_fit_for']})"
                    if r.get("largest_fit_for")
                    else ""
                )
            )
            requests = (
                "—"
                if impl == "ours" and not r["requests"]
                else ", ".join(f"{v} {k}" for k, v in sorted(r.get("requests", {}).items())) or "0"
            )
            rows.append(
                [
                    str(n),
                    name + (" — **extrapolated**" if x else ""),
                    _with_spread(r["start_returned_s"], r.get("runs", []), "start_returned_s", x),
                    f"{r['discovery_s']:.2f}" if r.get("discovery_s") is not None else "—",
                    _with_spread(r.get("all_open_s"), r.get("runs", []), "all_open_s", x),
                    f"{x}{r['cpu_s']:.1f}" if r.get("cpu_s") is not None else "n/a",
                    requests,
                    f"{r['open_watches']}",
                    f"{x}{r['tree']['processes']}",
                    f"{x}{r['tree']['threads']}",
                    f"{x}{r['tree']['rss'] / MIB:,.0f}",
                    f"{x}{r['tree']['pss'] / MIB:,.0f}",
                    f"{len(r.get('runs', [])) or '—'}",
                    scale_load(r),
                ]
            )
    return rows, by_n


def ratio_rows(by_n: dict[int, dict[str, dict[str, Any]]]) -> list[list[str]]:
    rows = []
    for n in sorted(by_n):
        ours, up = by_n[n].get("ours"), by_n[n].get("upstream")
        if not ours or not up:
            continue
        x = "~" if up.get("extrapolated") else ""

        def ratio(a: float, b: float, x: str = x) -> str:
            return f"{x}{a / b:.3f}" if b else "n/a"

        rows.append(
            [
                str(n) + (" (vs extrapolated)" if x else ""),
                ratio(ours["tree"]["processes"], up["tree"]["processes"]),
                ratio(ours["tree"]["threads"], up["tree"]["threads"]),
                ratio(ours["tree"]["rss"], up["tree"]["rss"]),
                ratio(ours["tree"]["pss"], up["tree"]["pss"]),
                ratio(ours["all_open_s"] or float("nan"), up["all_open_s"] or float("nan")),
                f"{ours['requests_total']} + {ours['open_watches'] + 1} watches vs 0 + {up['open_watches']} "
                "watches",
            ]
        )
    return rows
