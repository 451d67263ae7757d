"""The plain-text summary printed at the end of a run (and by --render)."""

from __future__ import annotations

from typing import Any

from ..common import fmt_ms
from .runs import load_note, normalized, spread
from .steady import is_current, steady_console
from .tables import floor_rows, latency_rows, ratio_rows, scale_table, validation_rows


def summary_table(results: dict[str, Any]) -> str:
    results = normalized(results)
    lines = []
    rows = latency_rows(results)
    if rows:
        lines.append(
            f"{'latency (median of runs)':<78} {'n':>4} {'p50 ms':>9} {'p99 ms':>9} {'p99 runs':>13} "
            f"{'max ms':>9}  goal"
        )
        for title, st, goal, verdict in rows:
            lines.append(
                f"{title[:78]:<78} {st['n']:>4} {fmt_ms(st['p50']):>9} {fmt_ms(st['p99']):>9} "
                f"{spread(st):>13} {fmt_ms(st['max']):>9}  {goal} {verdict}"
            )
        for i, run in enumerate(results["latency_runs"], 1):
            lines.append(f"latency run {i}: other load {load_note(run.get('load'))} CPUs")
        lines.append("")
    for row in floor_rows(results):
        lines.append(f"{row[0][:78]:<78} {row[1]:>4} {row[2]:>9} {row[3]:>9} {'':>13} {row[4]:>9}  {row[5]}")
    if results.get("floor"):
        lines.append("")
    for row in validation_rows(results):
        lines.append(f"{row[0][:78]:<78} {row[1]}  [{row[2]}] {row[3]}")
    if results["validation"]:
        lines.append("")
    table, by_n = scale_table(results)
    if table:
        head = [
            "N",
            "executor",
            "start() s",
            "discovery s",
            "all open s",
            "CPU s",
            "requests",
            "watches",
            "procs",
            "threads",
            "RSS MiB",
            "PSS MiB",
            "runs",
            "other CPUs",
        ]
        lines.append(" | ".join(head))
        lines.extend(" | ".join(r) for r in table)
        lines.append("")
        for r in ratio_rows(by_n):
            lines.append(
                f"N={r[0]}: ours/upstream processes {r[1]}, threads {r[2]}, RSS {r[3]}, PSS {r[4]}, "
                f"time to all watches open {r[5]}; requests {r[6]}"
            )
        lines.append("")
    if is_current(results.get("steady")):
        lines += steady_console(results)
    return "\n".join(lines)
