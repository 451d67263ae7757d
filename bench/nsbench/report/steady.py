"""Section 4 of the page, the steady state: ours vs upstream idle over the same window length, with
its part of the reading, the gaps and the findings. Every number comes from ``results["steady"]``."""

from __future__ import annotations

import dataclasses
from collections import Counter
from typing import Any

from airflow_provider_nsdiscovery.config import DiscoverySettings

from ..common import GOAL_STEADY_N, GOAL_STEADY_REVIEWS_PER_S, percentile
from .tables import md_table

REVIEWS = ("POST selfsubjectrulesreviews", "POST selfsubjectaccessreviews")
# apiserver_request_total counts a watch when it ends: each one ended is one re-opened.
WATCH_ENDED = "WATCH pods"
CPU_OF = ("scheduler", "apiserver", "etcd")
LABEL = {"ours": "ours", "upstream": "upstream"}
# The settings ours runs with in the steady state: the product's defaults, from their one home.
DEFAULTS = {f.name: f.default for f in dataclasses.fields(DiscoverySettings)}
RECHECK_S, BACKSTOP_S = DEFAULTS["access_recheck_interval"], DEFAULTS["access_backstop_interval"]


def is_current(steady: dict[str, Any] | None) -> bool:
    """Whether the results hold this layout of the steady state (older raw files do not)."""
    return bool(steady) and "impls" in steady  # type: ignore[operator]


def split(requests: dict[str, int]) -> tuple[int, int, dict[str, int]]:
    """(access reviews, pod watches ended, every other request by kind) of one bucket."""
    reviews = sum(requests.get(k, 0) for k in REVIEWS)
    other = {k: v for k, v in requests.items() if k not in REVIEWS and k != WATCH_ENDED}
    return reviews, requests.get(WATCH_ENDED, 0), other


def totals(run: dict[str, Any]) -> dict[str, Any]:
    rows = run["rows"]
    seconds = (rows[-1]["to_s"] - rows[0]["from_s"]) if rows else 0.0
    other: Counter[str] = Counter()
    reviews = watches = 0
    for row in rows:
        r, w, o = split(row["requests"])
        reviews, watches = reviews + r, watches + w
        other.update(o)
    spans = [row["to_s"] - row["from_s"] for row in rows]
    cpu = {
        who: sum(row["cpu_pct"].get(who, 0.0) * span for row, span in zip(rows, spans, strict=True))
        / max(sum(spans), 1e-9)
        for who in CPU_OF
    }
    return {
        "seconds": seconds,
        "namespaces": run["watchers"],
        "reviews": reviews,
        "watch_ended": watches,
        "conns": sum(row["new_conns"]["new_tree"] for row in rows),
        "conns_all": sum(row["new_conns"]["new_all"] for row in rows),
        "samples": sum(row["new_conns"]["samples"] for row in rows),
        "other": sum(other.values()),
        "other_by_kind": dict(other),
        "cpu": cpu,
    }


def per_s(count: float, t: dict[str, Any]) -> float:
    return count / t["seconds"] if t["seconds"] else float("nan")


def per_ns_hour(count: float, t: dict[str, Any]) -> float:
    return count / t["namespaces"] / t["seconds"] * 3600 if t["seconds"] else float("nan")


def _triple(count: int, t: dict[str, Any]) -> str:
    return f"{count} / {per_s(count, t):.3f} / {per_ns_hour(count, t):.2f}"


def goal_line(steady: dict[str, Any]) -> tuple[str, bool | None]:
    """The review-rate goal, judged by ours' measured rate over the whole window (None: not judged)."""
    ours = steady["impls"]["ours"]
    t = totals(ours)
    rate = per_s(t["reviews"], t)
    window = f"{ours['window_s'][0]:.0f}-{ours['window_s'][1]:.0f} s after start()"
    head = (
        f"Goal: access reviews in steady state at N={GOAL_STEADY_N} < {GOAL_STEADY_REVIEWS_PER_S:g} per "
        "second, RBAC watched, default settings: "
    )
    if ours["n"] != GOAL_STEADY_N:
        return head + (
            f"not judged by this run (N={ours['n']}); measured {rate:.3f} per second "
            f"({t['reviews']} reviews over the whole window, {window})."
        ), None
    met = rate < GOAL_STEADY_REVIEWS_PER_S
    return head + (
        f"{'met' if met else 'missed'} ({rate:.3f} per second: {t['reviews']} reviews over the whole "
        f"window, {window}, nothing excluded)."
    ), met


def _watched(run: dict[str, Any]) -> str:
    """Discovery's own verdict at the window's start and end; upstream has no discovery."""
    if run["impl"] != "ours":
        return "n/a (reviews no access)"
    word = {True: "yes", False: "no", None: "?"}
    return " / ".join(word[x] for x in run.get("access_watched") or (None, None))


def _opens_in_window(run: dict[str, Any]) -> list[float]:
    lo, hi = run["window_s"]
    return sorted(t for t in run.get("watch_opens", []) if lo <= t <= hi)


def waves(run: dict[str, Any]) -> list[dict[str, float]]:
    """Pod watch (re)opens in the window, from the watchers' own log line, grouped when < 5 s apart;
    only groups of at least a twentieth of the watchers (and 10) count as waves."""
    groups: list[list[float]] = []
    for t in _opens_in_window(run):
        if groups and t - groups[-1][-1] < 5:
            groups[-1].append(t)
        else:
            groups.append([t])
    return [
        {"at": g[0], "count": len(g), "p5_p95_s": percentile(g, 95) - percentile(g, 5) if len(g) > 1 else 0.0}
        for g in groups
        if len(g) >= max(10, run["watchers"] // 20)
    ]


def steady_section(results: dict[str, Any]) -> list[str]:
    steady = results["steady"]
    impls = steady["impls"]
    tot = {impl: totals(run) for impl, run in impls.items()}
    names = list(impls)

    def row(what: str, cell: Any) -> list[str]:
        return [what, *(cell(impl) for impl in names)]

    summary = [
        row("namespaces watched (N + the home namespace)", lambda i: str(impls[i]["watchers"])),
        row(
            "RBAC changes watched (discovery's `access_watched`, window start / end)",
            lambda i: _watched(impls[i]),
        ),
        row(
            "window, s after start()",
            lambda i: (
                f"{impls[i]['window_s'][0]:.0f}-{impls[i]['window_s'][1]:.0f} ({tot[i]['seconds']:.0f} s)"
            ),
        ),
        row(
            "access reviews (SSRR + SSAR): total / per s / per namespace per hour",
            lambda i: _triple(tot[i]["reviews"], tot[i]),
        ),
        row(
            "pod WATCH ended (= re-opened): total / per s / per namespace per hour",
            lambda i: _triple(tot[i]["watch_ended"], tot[i]),
        ),
        row(
            "new TLS connections from the executor's processes: total / per s / per namespace per hour",
            lambda i: _triple(tot[i]["conns"], tot[i]),
        ),
        row(
            "new TLS connections, all clients on the machine (bench's /metrics scrapes included)",
            lambda i: str(tot[i]["conns_all"]),
        ),
        row(
            "other requests: total / per s",
            lambda i: f"{tot[i]['other']} / {per_s(tot[i]['other'], tot[i]):.2f}",
        ),
        row(
            "CPU % mean: scheduler tree / kube-apiserver / etcd",
            lambda i: " / ".join(f"{tot[i]['cpu'][w]:.1f}" for w in CPU_OF),
        ),
        row(
            "processes / PSS MiB at the window's end",
            lambda i: f"{impls[i]['tree']['processes']} / {impls[i]['tree']['pss'] / 2**20:.0f}",
        ),
        row(
            "other load, CPUs (mean / max)",
            lambda i: f"{impls[i]['other_load']['other']:.2f} / {impls[i]['other_load']['other_max']:.2f}",
        ),
    ]
    timeout = steady.get("min_request_timeout")
    out = [
        f"### 4. Steady state: idle for {steady['seconds']} s, ours at N={steady['n']} vs upstream "
        + (f"at N={steady['upstream_n']}" if steady.get("upstream_n") else "not run"),
        "",
        f"In the control plane of the N={steady['n']} start-up runs, a fresh executor each, no task "
        "running. Ours as the product recommends: the scheduler identity also holds the read-only RBAC "
        f"watch rule (deploy/rbac-watch.yaml), default settings (`access_recheck_interval` {RECHECK_S:g} s, "
        f"`access_backstop_interval` {BACKSTOP_S:g} s, `recheck_jitter` {DEFAULTS['recheck_jitter']:g}). "
        "Upstream: cncf KubernetesExecutor "
        "in `multi_namespace_mode`, "
        + (
            f"at N={steady['upstream_n']} ({steady.get('upstream_why')}). "
            if steady.get("upstream_n")
            else f"not run ({steady.get('upstream_why')}). "
        )
        + "Each window starts once kube-apiserver shows all the executor's pod watches open and is "
        "counted whole; requests are kube-apiserver's own count (`/metrics`); new connections are "
        "sampled from /proc/net/tcp once a second (a socket ESTABLISHED to the API server's port that "
        "was not the second before, owned by a process of the executor's tree via /proc/<pid>/fd), "
        "so a connection shorter than a second can be missed.",
        "",
        md_table(["", *(LABEL[i] for i in names)], summary),
        "",
        goal_line(steady)[0],
        "",
        "**What ends watches in the window.** kube-apiserver runs with "
        + (f"`--min-request-timeout={timeout}`" if timeout else "`--min-request-timeout` unset (1800 s)")
        + ", which only times out watches that ask for no timeout of their own; no task runs, so no pod "
        "event comes and a watch ends by a timeout only. Upstream: `KubernetesJobWatcher._run` asks "
        "the server for `timeout_seconds=3600` (longer than the window) but sets the client read "
        "timeout `_request_timeout=30`, so each quiet pod watch ends by the client's read timeout after "
        "30 s; urllib3 drops the connection, `KubernetesJobWatcher.run` sleeps 1 s and the next watch "
        "opens a new TCP+TLS connection. Ours runs the same `_run` on a thread "
        "(`executors/pod_watcher.py`), but with `kube_client_request_args` set by "
        "`executors/scheduler.py` (`_watch_config`) unless the operator set them: "
        "`timeout_seconds` drawn per watcher from 240-360 s and `_request_timeout=(10, timeout_seconds + "
        "30)`, so the server ends each pod watch cleanly after 4-6 min and the watch re-opens on the "
        "kept-alive connection. Ours' namespace and RBAC watches (discovery's reflectors) ask for "
        "`timeout_seconds=300` with a 330 s read timeout, ended by the server the same way (under other "
        "requests).",
        "",
    ]
    for impl in names:
        run = impls[impl]
        rows = []
        for r in run["rows"]:
            reviews, ended, other = split(r["requests"])
            rows.append(
                [
                    f"{r['from_s']:.0f}-{r['to_s']:.0f}",
                    str(reviews),
                    str(ended),
                    f"{r['new_conns']['new_tree']} ({r['new_conns']['new_all']})",
                    ", ".join(f"{v} {k}" for k, v in sorted(other.items())) or "0",
                    " / ".join(f"{r['cpu_pct'].get(k, 0):.0f}" for k in CPU_OF),
                ]
            )
        found = waves(run)
        out += [
            f"{LABEL[impl].capitalize()}, N={run['n']}, per {steady['bucket_s']} s bucket:",
            "",
            md_table(
                [
                    "s after start()",
                    "access reviews",
                    "pod WATCH ended",
                    "new TLS connections: executor (all)",
                    "other requests",
                    "CPU % scheduler / apiserver / etcd",
                ],
                rows,
            ),
            "",
            "Pod watch (re)opens in the window, from the watchers' log line: "
            + (
                "; ".join(
                    f"{w['count']} at {w['at']:.0f} s (5th-95th percentile within {w['p5_p95_s']:.2f} s)"
                    for w in found
                )
                or "no waves"
            )
            + f"; {len(_opens_in_window(run))} in all.",
            "",
        ]
    return out


def steady_reading(results: dict[str, Any], out: list[str], gaps: list[str]) -> None:
    steady = results["steady"]
    impls = steady["impls"]
    tot = {impl: totals(run) for impl, run in impls.items()}
    line, met = goal_line(steady)
    o = tot["ours"]
    text = (
        f"- **Steady state, ours at N={impls['ours']['n']}, RBAC watched**: {o['reviews']} access reviews "
        f"in {o['seconds']:.0f} s ({per_s(o['reviews'], o):.3f} per second; "
        f"{per_ns_hour(o['reviews'], o):.2f} per namespace per hour). {line} "
        f"Pod watches: {o['watch_ended']} ended and re-opened ({per_ns_hour(o['watch_ended'], o):.1f} per "
        f"namespace per hour), {o['conns']} new TLS connections from the executor's process "
        f"({per_ns_hour(o['conns'], o):.1f} per namespace per hour); CPU {o['cpu']['scheduler']:.1f} % "
        f"scheduler, {o['cpu']['apiserver']:.1f} % kube-apiserver, {o['cpu']['etcd']:.1f} % etcd (of one "
        "core)."
    )
    if "upstream" in tot:
        u, un = tot["upstream"], impls["upstream"]["n"]
        text += (
            f" Upstream at N={un}, same window length: {u['watch_ended']} pod watches re-opened "
            f"({per_ns_hour(u['watch_ended'], u):.1f} per namespace per hour, its 30 s read timeout), "
            f"{u['conns']} new TLS connections from its processes ({per_ns_hour(u['conns'], u):.1f} per "
            f"namespace per hour), no access reviews ({u['reviews']}); CPU {u['cpu']['scheduler']:.1f} % "
            f"scheduler tree, {u['cpu']['apiserver']:.1f} % kube-apiserver, {u['cpu']['etcd']:.1f} % etcd."
        )
        if u["conns"] and 0 < o["conns"] < u["conns"]:
            ratio = per_ns_hour(o["conns"], o) / per_ns_hour(u["conns"], u)
            text += f" Per namespace and hour, ours opens {ratio:.2f} x upstream's new connections."
    out.append(text)
    early = _reviews_while_watched(impls["ours"])
    if early:
        out.append(
            f"- **Reviews while RBAC was watched**: {early} — in a window in which discovery reported "
            "RBAC changes watched from its start, where the periodic re-check is slowed to the "
            f"backstop interval (first one drawn from [0.5, 1] x {BACKSTOP_S:g} s after a namespace's "
            "review). "
            "See the finding below."
        )
    if met is False:
        gaps.append(
            f"steady-state access reviews at N={GOAL_STEADY_N}: {per_s(o['reviews'], o):.3f} per second vs "
            f"goal < {GOAL_STEADY_REVIEWS_PER_S:g}"
        )


def _reviews_while_watched(run: dict[str, Any]) -> str:
    """Where the window's reviews fell, when discovery said RBAC was watched at the window's start
    ("" when it did not, or none came)."""
    if not (run.get("access_watched") or (None,))[0]:
        return ""
    per_bucket = [(r, split(r["requests"])[0]) for r in run["rows"]]
    total = sum(c for _, c in per_bucket)
    if not total:
        return ""
    return f"{total} access reviews, " + ", ".join(
        f"{c} at {r['from_s']:.0f}-{r['to_s']:.0f} s" for r, c in per_bucket if c
    )


def steady_findings(results: dict[str, Any]) -> list[str]:
    steady = results["steady"]
    ours = steady["impls"]["ours"]
    out = []
    early = _reviews_while_watched(ours)
    if early:
        out.append(
            "**The start-up reviews done before the RBAC watch was up are re-checked once at the short "
            "interval**, by design (`discovery/controller.py`, `_review`). Measured, idle, RBAC watched "
            f"from the window's start: {early} after start(). A review schedules its namespace's next one "
            "with `_recheck_interval()` as it is at that moment: reviews done before the RBAC watch had "
            f"listed every kind use `access_recheck_interval` (first re-check at [0.5, 1] x {RECHECK_S:g} "
            f"s), later ones the backstop ({BACKSTOP_S:g} s). The first list of each RBAC kind only records "
            "what exists, so a binding removed between such a review and that list is seen by nothing "
            "else: moving those re-checks to the backstop would save these reviews and open that gap."
        )
    return out


def steady_console(results: dict[str, Any]) -> list[str]:
    steady = results["steady"]
    lines = []
    for impl, run in steady["impls"].items():
        t = totals(run)
        lines.append(
            f"steady {impl} N={run['n']} over {t['seconds']:.0f}s: reviews {t['reviews']} "
            f"({per_s(t['reviews'], t):.3f}/s), pod WATCH ended {t['watch_ended']}, new TLS connections "
            f"{t['conns']} executor / {t['conns_all']} all, other {t['other']}; CPU % "
            + ", ".join(f"{w} {t['cpu'][w]:.1f}" for w in CPU_OF)
        )
    lines.append(goal_line(steady)[0])
    return lines
