"""Constants, goals and the small number helpers every part of the bench shares."""

from __future__ import annotations

import math
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
POD_TEMPLATE = REPO / "tests" / "integration" / "pod_template.yaml"
DOC = REPO / "docs" / "benchmarks.md"
SELECTOR_KEY = "nsd-bench"
FORBIDDEN_SELECTOR_KEY = "nsd-bench-b"
WATCHED_SELECTOR_KEY = "nsd-bench-r"  # the executor whose identity may watch RBAC objects
RBAC_WATCH_ROLE = "nsd-bench-rbac-watch"
TASK_ROLE = "nsd-bench-task-pods"
MIB = 1024 * 1024

# Goals from the issues.
GOAL_WATCH_P99_MS = 250.0
# A watcher stops on a decision the executor already holds (its own task placement), no request in
# between: unlabel/delete -> watcher stopped p99 < 25 ms.
GOAL_STOP_P99_MS = 25.0
STOP_KEYS = frozenset({"unlabel_to_stopped", "delete_to_stopped"})
# RoleBinding removed -> namespace forbidden, at default settings with the RBAC watch granted.
GOAL_REVOKE_WATCHED_P99_MS = 250.0
# The last task's pod finished in a draining namespace -> its watcher stopped.
GOAL_DRAIN_STOP_P99_MS = 100.0
_KEY_GOALS = {
    "revoke_watched_to_forbidden": GOAL_REVOKE_WATCHED_P99_MS,
    "drain_to_stopped": GOAL_DRAIN_STOP_P99_MS,
}


def watch_goal_ms(key: str) -> float:
    """The p99 goal of a latency row."""
    if key in _KEY_GOALS:
        return _KEY_GOALS[key]
    return GOAL_STOP_P99_MS if key in STOP_KEYS else GOAL_WATCH_P99_MS


GOAL_CHECK_HIT_US = 20.0
GOAL_RSS_RATIO_AT_100 = 0.2
GOAL_DISCOVERY_1000_S = 10.0
GOAL_START_1000_S = 3.0
# Access reviews (SelfSubjectRulesReviews + SelfSubjectAccessReviews) an idle executor makes at N=1000,
# RBAC watched (deploy/rbac-watch.yaml) at default settings: the rate over the whole steady window.
GOAL_STEADY_REVIEWS_PER_S = 1.0
GOAL_STEADY_N = 1000
# Above this many CPUs busy with other work on average, a run's timings are flagged as disturbed.
OTHER_LOAD_FLAG = 0.3


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile: with 100 samples p99 is the 99th smallest, with 50 the largest."""
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


def ms_after(t: float | None, t0: float) -> float:
    return float("nan") if t is None else (t - t0) * 1000


def fmt_p(values: list[float], p: float) -> str:
    clean = [v for v in values if not math.isnan(v)]
    return f"{percentile(clean, p):.1f}" if clean else "n/a"


def fmt_s(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}s"


def per_call(api: dict[str, int], calls: int) -> str:
    return ", ".join(f"{v / calls:g} {k.removeprefix('api: ')}" for k, v in sorted(api.items())) or "none"


# =============================================================================================
# Environment and report


def fmt_ms(value: float) -> str:
    if math.isnan(value):
        return "n/a"
    return f"{value:.0f}" if value >= 100 else f"{value:.1f}"


def stats_of(values: list[float]) -> dict[str, float]:
    clean = [v for v in values if not math.isnan(v)]
    if not clean:
        return {
            "n": 0,
            "p50": float("nan"),
            "p99": float("nan"),
            "max": float("nan"),
            "missing": len(values),
        }
    return {
        "n": len(clean),
        "p50": percentile(clean, 50),
        "p99": percentile(clean, 99),
        "max": max(clean),
        "missing": len(values) - len(clean),
    }
