"""Section 4 of the page, the steady state: ours vs upstream idle over the same window length, with
its part of the reading, the gaps and the findings. Every number comes from ``results["steady"]``."""

from __future__ import annotations

from collections import Counter
from typing import Any

from ..common import GOAL_STEADY_N, GOAL_STEADY_REVIEWS_PER_S, percentile
from .tables import md_table

REVIEWS = ("POST selfsubjectrulesreviews", "POST selfsubjectaccessreviews")
# apiserver_request_total counts a watch when it ends: each one ended is one re-opened.
WATCH_ENDED = "WATCH pods"
CPU_OF = ("scheduler", "apiserver", "etcd")
LABEL = {"ours": "ours", "upstream": "upstream"}


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
    return f"{count} / {per_s(count, t):.2f} / {per_ns_hour(count, t):.1f}"


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
        f"### 4. Steady state: idle for {steady['seconds']} s, ours at N={steady['n']} vs upstream at "
        f"N={steady.get('upstream_n') or 'not run'}",
        "",
        f"In the control plane of the N={steady['n']} start-up runs, a fresh executor each, no task "
        "running. Ours as the product recommends: the scheduler identity also holds the read-only RBAC "
        "watch rule (deploy/rbac-watch.yaml), default settings (`access_recheck_interval` 60 s, "
        "`access_backstop_interval` 1800 s, `recheck_jitter` 0.1). Upstream: cncf KubernetesExecutor "
        f"in `multi_namespace_mode`, at N={steady.get('upstream_n')} ({steady.get('upstream_why')}). "
        "Each window starts once kube-apiserver shows all the executor's pod watches open and is "
        "counted whole; requests are kube-apiserver's own count (`/metrics`); new connections are "
        "sampled from /proc/net/tcp once a second (ESTABLISHED to the API server's port, local port "
        "not seen the second before, owned by a process of the executor's tree via /proc/<pid>/fd), "
        "so a connection shorter than a second can be missed.",
        "",
        md_table(["", *(LABEL[i] for i in names)], summary),
        "",
        goal_line(steady)[0],
        "",
        "**What ends watches in the window.** kube-apiserver runs with "
        + (f"`--min-request-timeout={timeout}`" if timeout else "`--min-request-timeout` unset (1800 s)")
        + ", which only times out watches that ask for no timeout of their own. Both executors run "
        "upstream's `KubernetesJobWatcher._run` for pod watches (ours on a thread, "
        "`executors/pod_watcher.py`), which asks the server for `timeout_seconds=3600` — longer than "
        "the window — and sets the client read timeout `_request_timeout=30`. With no task, no pod "
        "event comes, so every pod watch ends by the client's read timeout after 30 s: urllib3 drops "
        "the connection, and the next watch opens a new TCP+TLS connection. Ours re-opens at once "
        "(`ThreadedPodWatcher._watch_once` returns on `ReadTimeoutError`); upstream's "
        "`KubernetesJobWatcher.run` sleeps 1 s first. Ours' namespace and RBAC watches (discovery's "
        "reflectors) ask for `timeout_seconds=300` with a 330 s read timeout: the server ends them "
        "cleanly every 5 min on a kept-alive connection (under other requests).",
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
        f"The pod watches cost more: {o['watch_ended']} re-opens ({per_s(o['watch_ended'], o):.1f} per "
        f"second, {per_ns_hour(o['watch_ended'], o):.0f} per namespace per hour) on {o['conns']} new "
        f"TLS connections seen from the executor's process; CPU {o['cpu']['scheduler']:.1f} % scheduler, "
        f"{o['cpu']['apiserver']:.1f} % kube-apiserver, {o['cpu']['etcd']:.1f} % etcd (of one core)."
    )
    if "upstream" in tot:
        u, un = tot["upstream"], impls["upstream"]["n"]
        text += (
            f" Upstream at N={un}: {u['watch_ended']} re-opens ({per_ns_hour(u['watch_ended'], u):.0f} per "
            f"namespace per hour) on {u['conns']} new TLS connections from its processes, no access "
            f"reviews ({u['reviews']}); CPU {u['cpu']['scheduler']:.1f} % scheduler tree, "
            f"{u['cpu']['apiserver']:.1f} % kube-apiserver, {u['cpu']['etcd']:.1f} % etcd."
        )
    out.append(text)
    if met is False:
        gaps.append(
            f"steady-state access reviews at N={GOAL_STEADY_N}: {per_s(o['reviews'], o):.3f} per second vs "
            f"goal < {GOAL_STEADY_REVIEWS_PER_S:g}"
        )
    if o["watch_ended"]:
        gaps.append(
            f"ours idle at N={impls['ours']['n']}: pod watches re-open {per_s(o['watch_ended'], o):.1f} "
            f"times per second with {per_s(o['conns'], o):.1f} new TLS connections per second (measured; "
            f"{per_ns_hour(o['conns'], o):.0f} per namespace per hour), the same churn as upstream"
        )


def steady_findings(results: dict[str, Any]) -> list[str]:
    steady = results["steady"]
    ours = steady["impls"]["ours"]
    t = totals(ours)
    if not t["watch_ended"]:
        return []
    found = waves(ours)
    n = ours["watchers"]
    spread = (
        " in waves of " + ", ".join(f"{w['count']} within {w['p5_p95_s']:.2f} s" for w in found)
        if found
        else ""
    )
    return [
        f"**Idle pod watches re-open every ~30 s on new TLS connections** (`executors/pod_watcher.py`, "
        f"through upstream's `KubernetesJobWatcher._run`). Measured at N={ours['n']}: "
        f"{t['watch_ended']} pod watches ended in {t['seconds']:.0f} s ({per_s(t['watch_ended'], t):.1f}/s)"
        f"{spread}, and {t['conns']} new connections from the executor ({per_s(t['conns'], t):.1f}/s). "
        "Cause: `_request_timeout=30` with `timeout_seconds=3600` and no bookmarks, so a quiet watch "
        "ends by a client read timeout, which drops the connection. Suggested fix, in "
        "`_InterruptibleCoreV1.list_namespaced_pod` for `watch=True` calls only: a per-watcher random "
        "server-side timeout (e.g. `timeout_seconds = random.randint(240, 360)`, "
        "`_request_timeout = (10, timeout_seconds + 30)`), as discovery's own reflectors do. The API "
        "server then ends quiet watches cleanly on a kept-alive connection, ~10x less often "
        f"({n / 300:.1f} instead of {n / 30:.0f} WATCH/s at {n} watchers) and spread out. Trade-off: a "
        "silently dead connection is noticed after up to ~6.5 min instead of 30 s, unless TCP keepalive "
        "is set on the watch pool. Upstream has the same re-opens, one process per namespace."
    ]


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
