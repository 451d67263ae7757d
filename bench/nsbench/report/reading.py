"""The prose of the page: what the numbers say against the goals, and the package findings.

Every number in it is computed from the run's results; nothing is typed in.
"""

from __future__ import annotations

import math
from typing import Any

from ..common import (
    GOAL_CHECK_HIT_US,
    GOAL_DISCOVERY_1000_S,
    GOAL_RSS_RATIO_AT_100,
    GOAL_START_1000_S,
    GOAL_STOP_P99_MS,
    GOAL_WATCH_P99_MS,
    MIB,
    OTHER_LOAD_FLAG,
    fmt_ms,
    fmt_p,
    fmt_s,
    stats_of,
    watch_goal_ms,
)
from .access_paths import access_paths_reading
from .runs import across_runs
from .steady import is_current, steady_findings, steady_reading
from .tables import forbidden_bound_ms


def reading(results: dict[str, Any], by_n: dict[int, dict[str, dict[str, Any]]]) -> list[str]:
    lat, val = results["latency"], results["validation"]
    out: list[str] = []
    gaps: list[str] = []
    phases = results.get("cpu_phases") or []
    if phases:
        seconds = sum(p["seconds"] for p in phases)
        other = sum(p["other"] * p["seconds"] for p in phases) / max(seconds, 1)
        if other > OTHER_LOAD_FLAG:
            out.append(
                f"- **This run shared the machine**: other processes kept {other:.2f} of the "
                f"{results['machine'].get('nproc', '?')} CPUs busy on average (table above). Latencies and "
                "above all the CPU-bound start-up times are therefore pessimistic; the request counts, "
                "process and thread counts and memory are not affected."
            )
    if lat:
        _reading_latency(results, by_n, out, gaps)
        access_paths_reading(results, out, gaps)
    if val:
        _reading_validation(results, by_n, out, gaps)
    if by_n:
        _reading_scale(results, by_n, out, gaps)
    if is_current(results.get("steady")):
        steady_reading(results, out, gaps)
    out += ["", "### Gaps", ""]
    out += [f"- {g}" for g in gaps] or ["- none against the stated goals."]
    out += ["", "### Package findings and suggested fixes", ""]
    out += [f"{i}. {finding}" for i, finding in enumerate(findings(results, by_n), 1)] or ["- none."]
    return out


def _reading_latency(
    results: dict[str, Any],
    by_n: dict[int, dict[str, dict[str, Any]]],
    out: list[str],
    gaps: list[str],
) -> None:
    lat = results["latency"]
    watch_keys = [
        ("label_to_watcher", "label → watcher"),
        ("label_to_watch_open", "label → watch open"),
        ("burst_to_watch_open", "labelled at once → each watch open"),
        ("label_to_pod", "label → first pod"),
        ("label_to_pod_seen", "label → first pod seen by its watcher"),
        ("unlabel_to_stopped", "unlabel → stopped"),
        ("delete_to_stopped", "delete → stopped"),
    ]
    parts = []
    for key, name in watch_keys:
        if key not in lat:
            continue
        st = across_runs([r["latency"][key] for r in results["latency_runs"] if key in r["latency"]])
        parts.append(f"{name} p99 {fmt_ms(st['p99'])} ms")
        if st["missing"] or not st["p99"] < watch_goal_ms(key):
            gaps.append(f"{name}: p99 {fmt_ms(st['p99'])} ms vs goal < {watch_goal_ms(key):.0f} ms")
    out.append(
        f"- **Watch-driven paths** (goal p99 < {GOAL_WATCH_P99_MS:.0f} ms on loopback, "
        f"< {GOAL_STOP_P99_MS:.0f} ms for a watcher to stop): " + ", ".join(parts) + ". "
        "Adding a label costs one namespace watch event plus one SelfSubjectRulesReview: label → "
        f"`permitted` p50 {fmt_p(lat.get('label_to_permitted', []), 50)} ms, of the order of the admin's own "
        f"PATCH round trip (p50 {fmt_p(lat.get('label_patch_rtt', []), 50)} ms; the watch event often "
        "reaches the executor before the PATCH response reaches the admin); the new state wakes the "
        "scheduler's watcher-reconcile thread, which starts the watcher. Label → first pod is "
        "dominated by upstream's launch machinery "
        f"(`execute_async` + `sync()` → pod created p50 {fmt_p(lat.get('launch_only', []), 50)} ms, of which "
        f"building the pod is {results['validation'].get('build_pod_us', 0) / 1000:.1f} ms), not by "
        "discovery."
    )
    if _stop_waits_for_list(lat):
        pl = lat["pod_list_after_write"]
        cons, rv0 = stats_of(pl["consistent"]), stats_of(pl["rv0"])
        stop = stats_of(lat.get("unlabel_to_stopped", []))
        out.append(
            f"- The stop paths (p50 {fmt_ms(stop['p50'])} ms) are several times slower than the start "
            "path, and "
            "the difference is one request: before stopping a watcher the engine counts the executor's "
            "active pods in the namespace (`NamespaceDiscovery._count_active_pods`) with a LIST that carries "
            "no resourceVersion. kube-apiserver "
            f"{results['machine']['kube-apiserver'].split(';')[0].split()[-1]} "
            "serves such a consistent LIST from its watch cache only after the pods cache has caught up with "
            f"etcd's newest revision, and after a write to another resource (the namespace change that "
            "triggered the stop) that waits for an etcd progress notification: p50 "
            f"{fmt_ms(cons['p50'])} ms "
            f'vs {fmt_ms(rv0["p50"])} ms with `resourceVersion="0"`. Within the goal, but it is most of '
            "the stop latency (see the package findings below)."
        )
    if "label_to_pod" in lat:
        out.append(
            f"- Label → first pod works without waiting for the watch: "
            f"{lat['label_to_pod_on_demand']} of {len(lat['label_to_pod'])} launches came before the "
            f"watch event had been processed and were admitted by the on-demand look "
            f"(GET + review), none refused ({lat['label_to_pod_refused']})."
        )
    if "revoke_to_forbidden" in lat:
        st, bound = stats_of(lat["revoke_to_forbidden"]), forbidden_bound_ms(results)
        interval = lat["recheck_interval"]
        within = sum(v <= bound for v in lat["revoke_to_forbidden"] if not math.isnan(v))
        out.append(
            "- **RoleBinding removed**, as here, where the scheduler may not watch RBAC objects, is seen "
            "at the next access re-check (where it may, a change is acted on at once: the RBAC-watched "
            "rows above). With "
            f"`access_recheck_interval={interval:g}` s and jitter 0.1 a re-check comes every "
            f"{interval * 0.9:g}-{interval * 1.1:g} s, observed on the engine's 0.25 s tick, so the expected "
            f"latency is uniform-ish between 0 and ≈ {bound:.0f} ms (mean ≈ {interval * 500 + 125:.0f} ms). "
            f"Measured p50 {fmt_ms(st['p50'])} ms, p99 {fmt_ms(st['p99'])} ms, max "
            f"{fmt_ms(st['max'])} ms; "
            f"{within} of {st['n']} within the bound. With the default interval of 60 s the same bound is "
            f"≈ {60 * 1.1 + 0.25:.1f} s — except that any 403 seen by a pod watch or a pod create "
            "invalidates the namespace at once."
        )
        if st["missing"] or st["max"] > bound:
            gaps.append(
                f"RoleBinding removed → forbidden: max {fmt_ms(st['max'])} ms exceeds the "
                f"expected bound {bound:.0f} ms"
            )


def _reading_validation(
    results: dict[str, Any],
    by_n: dict[int, dict[str, dict[str, Any]]],
    out: list[str],
    gaps: list[str],
) -> None:
    val = results["validation"]
    hit = val["hit"]["best"]
    miss = stats_of(val["miss"]["samples_us"])
    out.append(
        f"- **Pre-launch check**: a permitted namespace costs {hit:.2f} µs per task "
        f"(goal < {GOAL_CHECK_HIT_US:.0f} µs: {'met' if hit < GOAL_CHECK_HIT_US else 'missed'}), "
        f"{val['pod_check']['best']:.2f} µs on a built pod — about "
        f"{val['pod_check']['best'] / val['build_pod_us'] * 100:.2f} % of the "
        f"{val['build_pod_us']:.0f} µs upstream spends building that pod. A miss costs one GET and one "
        f"review, p50 {miss['p50'] / 1000:.1f} ms, paid once per newly labelled namespace."
    )
    if hit >= GOAL_CHECK_HIT_US:
        gaps.append(f"check() cache hit {hit:.2f} µs vs goal < {GOAL_CHECK_HIT_US:.0f} µs")


def _reading_scale(
    results: dict[str, Any],
    by_n: dict[int, dict[str, dict[str, Any]]],
    out: list[str],
    gaps: list[str],
) -> None:
    ours_proc = sorted({v["ours"]["tree"]["processes"] for v in by_n.values() if "ours" in v})
    ns_sorted = sorted(by_n)
    up_proc = ", ".join(
        ("~" if by_n[n]["upstream"].get("extrapolated") else "")
        + f"{by_n[n]['upstream']['tree']['processes']} at N={n}"
        for n in ns_sorted
        if "upstream" in by_n[n]
    )
    threads = ", ".join(
        f"{by_n[n]['ours']['tree']['threads']} at N={n}" for n in ns_sorted if "ours" in by_n[n]
    )
    out.append(
        f"- **Processes**: ours {'/'.join(map(str, ours_proc))} at every N (the executor plus upstream's two "
        f"`multiprocessing.Manager` processes) — O(1), goal met; upstream {up_proc} (one per namespace). "
        f"Threads stay O(N) for us (one watcher thread per namespace: {threads}), which is cheap in memory "
        "but is one watch connection per namespace, like upstream."
    )
    if len(ours_proc) != 1:
        gaps.append(f"process count varies with N: {ours_proc}")
    if 100 in by_n and "ours" in by_n[100] and "upstream" in by_n[100]:
        o, u = by_n[100]["ours"]["tree"], by_n[100]["upstream"]["tree"]
        rss, pss = o["rss"] / u["rss"], o["pss"] / u["pss"]
        ours_ns = sorted(n for n in by_n if "ours" in by_n[n])
        pss_per_ns = (
            (by_n[ours_ns[-1]]["ours"]["tree"]["pss"] - by_n[ours_ns[0]]["ours"]["tree"]["pss"])
            / (ours_ns[-1] - ours_ns[0])
            if len(ours_ns) > 1
            else 0.0
        )
        out.append(
            f"- **Memory at N=100** (goal: at most 1/5 of upstream): RSS {o['rss'] / MIB:.0f} vs "
            f"{u['rss'] / MIB:,.0f} MiB = {rss:.3f}; PSS {o['pss'] / MIB:.0f} vs {u['pss'] / MIB:,.0f} MiB "
            f"= {pss:.3f}. Met by both measures. Upstream's per-process cost is "
            f"{by_n[100]['upstream']['per_process']['pss'] / MIB:.1f} MiB PSS "
            f"({by_n[100]['upstream']['per_process']['rss'] / MIB:.0f} MiB RSS, mostly pages shared with the "
            f"parent after fork); ours grows by {pss_per_ns / 1024:.0f} KiB PSS per namespace."
        )
        if rss > GOAL_RSS_RATIO_AT_100:
            gaps.append(f"RSS at N=100 is {rss:.3f} of upstream (goal ≤ 0.2)")
    if 1000 in by_n and "ours" in by_n[1000]:
        o = by_n[1000]["ours"]
        done = o["all_open_s"]
        met = done is not None and done < GOAL_DISCOVERY_1000_S
        cpu = (
            f" The executor's process tree used {o['cpu_s']:.1f} CPU-s in that time."
            if o.get("cpu_s")
            else ""
        )
        out.append(
            f"- **Full discovery of 1000 namespaces** (goal < {GOAL_DISCOVERY_1000_S:.0f} s): `start()` "
            f"returned after {o['start_returned_s']:.2f} s with all 1001 watchers live, and kube-apiserver "
            f"had all 1001 pod watches open after {fmt_s(done)}: "
            + (f"goal met, {GOAL_DISCOVERY_1000_S - done:.1f} s to spare." if met else "**goal missed**.")
            + f" Discovery itself (one LIST, 1000 SelfSubjectRulesReviews at `review_concurrency=8`) took "
            f"{o['discovery_s']:.2f} s; the rest is creating and starting 1001 watcher threads, each opening "
            f"its own TLS connection and watch.{cpu} See the start-up finding below."
        )
        if not met:
            gaps.append(f"full discovery of 1000 namespaces took {fmt_s(done)} vs goal < 10 s")
        if done is None or done >= GOAL_START_1000_S:
            gaps.append(
                f"N=1000 start-up → all watches open {fmt_s(done)} vs goal < {GOAL_START_1000_S:.0f} s "
                "on 2 cores"
            )
        up = by_n[1000].get("upstream")
        if up and up.get("all_open_s") is not None:
            x = "~" if up.get("extrapolated") else ""
            out.append(
                f"  Upstream at N=1000 ({'extrapolated' if up.get('extrapolated') else 'measured'}): "
                f"{x}{up['all_open_s']:.0f} s to open the watches (it forks the watcher processes one by "
                "one), "
                f"{up['tree']['processes']} processes, {x}{up['tree']['pss'] / 2**30:.1f} GiB PSS."
            )
        fit = next(
            (by_n[m]["upstream"] for m in by_n if by_n[m].get("upstream", {}).get("largest_fit_for")), None
        )
        if up and up.get("extrapolated") and fit and fit.get("all_open_s") is not None:
            out.append(
                f"  Measured beside it at N={fit['n']}, the most upstream watcher processes that fit in half "
                f"the memory: {fit['all_open_s']:.1f} s to open the watches, {fit['tree']['processes']} "
                f"processes, {fit['tree']['pss'] / 2**30:.1f} GiB PSS."
            )


def _stop_waits_for_list(lat: dict[str, Any]) -> bool:
    """Whether the measured stop path is as slow as a consistent pod LIST (it makes one), so the LIST
    finding applies to this run; a product that decides the drain without a LIST stops faster."""
    if "pod_list_after_write" not in lat or "unlabel_to_stopped" not in lat:
        return False
    stop = stats_of(lat["unlabel_to_stopped"])["p50"]
    return bool(stop >= stats_of(lat["pod_list_after_write"]["consistent"])["p50"])


def findings(results: dict[str, Any], by_n: dict[int, dict[str, dict[str, Any]]]) -> list[str]:
    lat = results["latency"]
    out: list[str] = []
    if _stop_waits_for_list(lat):
        pl = lat["pod_list_after_write"]
        cons, rv0 = stats_of(pl["consistent"]), stats_of(pl["rv0"])
        stop, gone = (
            stats_of(lat["unlabel_to_stopped"]),
            stats_of(lat.get("delete_to_stopped", [])),
        )
        saved = cons["p50"] - rv0["p50"]
        out.append(
            f"**Consistent pod LIST on every stop** (`discovery/engine.py`, `_count_active_pods`). "
            f"Measured: label removed → stopped p50 {fmt_ms(stop['p50'])} ms, deleted → stopped p50 "
            f"{fmt_ms(gone['p50'])} ms, of which the LIST alone is p50 {fmt_ms(cons['p50'])} ms "
            f"(p99 {fmt_ms(cons['p99'])} ms) against {fmt_ms(rv0['p50'])} ms for the same LIST with "
            '`resourceVersion="0"`. Suggested fix: pass `resource_version="0"` (served from the watch '
            "cache, which lags etcd by milliseconds; the pods it must find were created by this executor "
            "with "
            "a synchronous create long before the namespace change that triggers the count), or, to keep a "
            'guarantee, `resource_version_match="NotOlderThan"` with the resourceVersion of this executor\'s '
            f"last pod create in that namespace. Expected: both stop paths ~{saved:.0f} ms faster at p50. "
            "Low priority: the goal is met either way."
        )
    if is_current(results.get("steady")):
        out += steady_findings(results)
    if 1000 in by_n and "ours" in by_n[1000]:
        o = by_n[1000]["ours"]
        if o.get("discovery_s") is not None and o.get("all_open_s") is not None:
            margin = GOAL_DISCOVERY_1000_S - o["all_open_s"]
            watchers = o["start_returned_s"] - o["discovery_s"]
            cpu_s = o.get("cpu_s")
            out.append(
                f"**Start-up at N=1000 is CPU-bound in one process** (all watches open after "
                f"{o['all_open_s']:.2f} s: "
                + (f"{margin:.1f} s under" if margin > 0 else f"{-margin:.1f} s over")
                + f" the 10 s goal). Discovery: {o['discovery_s']:.2f} s for 1000 reviews. Watchers: "
                f"{watchers:.2f} s from the end of discovery until `start()` returned (1001 watcher threads "
                "created and started), then the time until every one of them had its TLS connection and "
                "watch open"
                + (
                    f"; the executor's process tree used {cpu_s:.1f} CPU-s over those "
                    f"{o['all_open_s']:.1f} s, about one core, the most one Python process gets."
                    if cpu_s
                    else "."
                )
                + " Both are per-namespace costs upstream pays too (in a process each, on all cores, but "
                f"serialized by forking). The {GOAL_START_1000_S:.0f} s goal needs less CPU per namespace, "
                "not more parallelism inside one process: the watcher threads already start behind a gate "
                "that opens once all of them exist, and share one TLS context."
            )
    return out
