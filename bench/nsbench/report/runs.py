"""Repeated runs: pooling their samples, summarizing a number across runs, flagging loaded runs.

A results file from before repetitions (one "latency" and "validation" record, no "latency_runs")
reads as a single run, so ``--render`` keeps working on older raw files.
"""

from __future__ import annotations

import math
import statistics
from typing import Any

from ..common import OTHER_LOAD_FLAG, fmt_ms, percentile, stats_of


def normalized(results: dict[str, Any]) -> dict[str, Any]:
    """``results`` with "latency_runs" always present and "latency"/"validation"/"floor" pooled."""
    runs = results.get("latency_runs")
    if runs is None:
        runs = (
            [{"latency": results.get("latency", {}), "validation": results.get("validation", {})}]
            if results.get("latency")
            else []
        )
    return {
        **results,
        "latency_runs": runs,
        "latency": pool([r.get("latency", {}) for r in runs]),
        # timeit numbers are a best-of already; the first run's stand for the run.
        "validation": runs[0].get("validation", {}) if runs else {},
        "floor": pool([r.get("floor", {}) for r in runs]),
    }


def pool(records: list[dict[str, Any]]) -> dict[str, Any]:
    """One record from several: samples concatenated, counts added, anything else from the first."""
    out: dict[str, Any] = {}
    for record in records:
        for key, value in record.items():
            if key not in out:
                out[key] = (
                    list(value)
                    if isinstance(value, list)
                    else pool([value])
                    if isinstance(value, dict)
                    else value
                )
            elif isinstance(value, list):
                out[key].extend(value)
            elif isinstance(value, dict):
                out[key] = pool([out[key], value])
            elif isinstance(value, int) and not isinstance(value, bool):
                out[key] += value
    return out


def across_runs(samples_per_run: list[list[float]]) -> dict[str, float]:
    """p50/p99 as the median of the runs' own, the spread of p99 across runs, and the overall max."""
    per_run = [stats_of(s) for s in samples_per_run]
    done = [s for s in per_run if s["n"]]
    if not done:
        nan = float("nan")
        missing = sum(s["missing"] for s in per_run)
        empty = {"n": 0, "p50": nan, "p99": nan, "max": nan, "p99_min": nan, "p99_max": nan, "runs": 0}
        return {**empty, "missing": missing}
    return {
        "n": sum(s["n"] for s in done),
        "p50": statistics.median(s["p50"] for s in done),
        "p99": statistics.median(s["p99"] for s in done),
        "p99_min": min(s["p99"] for s in done),
        "p99_max": max(s["p99"] for s in done),
        "max": max(s["max"] for s in done),
        "missing": sum(s["missing"] for s in per_run),
        "runs": len(done),
    }


def spread(st: dict[str, float]) -> str:
    """p99 across runs, "min-max", or a dash for a single run."""
    if st.get("runs", 1) <= 1 or math.isnan(st["p99_min"]):
        return "—"
    return f"{fmt_ms(st['p99_min'])}-{fmt_ms(st['p99_max'])}"


def loaded(load: dict[str, float] | None) -> bool:
    return bool(load) and float(load.get("other", 0.0)) > OTHER_LOAD_FLAG  # type: ignore[union-attr]


def load_note(load: dict[str, float] | None) -> str:
    """Other load of a run, flagged when above the threshold."""
    if not load or not load.get("seconds"):
        return "not measured"
    text = f"{load['other']:.2f} (max {load['other_max']:.2f})"
    return f"**{text} ⚠ loaded**" if loaded(load) else text


def floor_p50(values: list[float]) -> float:
    clean = [v for v in values if not math.isnan(v)]
    return percentile(clean, 50) if clean else float("nan")
