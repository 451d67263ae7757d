"""The reading of the RoleBinding-removed (RBAC watched, 403 on launch) and drain rows, with their gaps."""

from __future__ import annotations

from typing import Any

from ..common import fmt_ms, watch_goal_ms
from .runs import across_runs


def _across(results: dict[str, Any], key: str) -> dict[str, float]:
    return across_runs([r["latency"][key] for r in results["latency_runs"] if key in r["latency"]])


def _goal_row(
    results: dict[str, Any], key: str, name: str, gaps: list[str], note: str = ""
) -> dict[str, float]:
    st = _across(results, key)
    goal = watch_goal_ms(key)
    if st["missing"] or not st["p99"] < goal:
        never = f", {st['missing']:.0f} never happened" if st["missing"] else ""
        gaps.append(f"{name}: p99 {fmt_ms(st['p99'])} ms vs goal < {goal:.0f} ms{never}{note}")
    return st


def access_paths_reading(results: dict[str, Any], out: list[str], gaps: list[str]) -> None:
    lat = results["latency"]
    if "revoke_watched_to_forbidden" in lat:
        st = _goal_row(
            results, "revoke_watched_to_forbidden", "RoleBinding removed → forbidden (RBAC watched)", gaps
        )
        stop = _across(results, "revoke_watched_to_stopped")
        out.append(
            "- **RoleBinding removed, RBAC watch granted** (the scheduler identity bound to "
            "`RBAC_WATCH_RULE` as deploy/rbac-watch.yaml does; default settings, so the periodic re-check "
            "becomes the slow `access_backstop_interval` and plays no part): DELETE sent → `forbidden` "
            f"p50 {fmt_ms(st['p50'])} ms, p99 {fmt_ms(st['p99'])} ms over {st['n']:.0f} trials (goal p99 < "
            f"{watch_goal_ms('revoke_watched_to_forbidden'):.0f} ms: "
            + (
                "met"
                if not st["missing"] and st["p99"] < watch_goal_ms("revoke_watched_to_forbidden")
                else "missed"
            )
            + f"); → watcher stopped p50 {fmt_ms(stop['p50'])} ms, p99 {fmt_ms(stop['p99'])} ms. The "
            "polled rows beside it are the same change without RBAC watch rights."
        )
    if "launch403_launch_to_forbidden" in lat:
        launch, delete = (
            _across(results, "launch403_launch_to_forbidden"),
            _across(results, "launch403_delete_to_forbidden"),
        )
        stop = _across(results, "launch403_launch_to_stopped")
        outcome = lat.get("launch403_outcome", {})
        example = str(lat.get("launch403_example", "")).split(" (", 1)[0]  # the reason, not the fix
        out.append(
            "- **The 403 fast path** (no RBAC watch rights, `access_recheck_interval` 60 s): the RoleBinding "
            "is removed, and once the API server's authorizer has dropped it a task is launched into the "
            "namespace, which is still `permitted` in the executor's table. Its pod create gets a 403, and "
            "the executor re-checks the namespace at once instead of waiting up to 60 s: launch → "
            f"`forbidden` p50 {fmt_ms(launch['p50'])} ms, p99 {fmt_ms(launch['p99'])} ms (from the DELETE "
            f"p50 {fmt_ms(delete['p50'])} / p99 {fmt_ms(delete['p99'])} ms, which includes the wait for the "
            f"authorizer); launch → watcher stopped p99 {fmt_ms(stop['p99'])} ms. What the "
            f"{launch['n'] + launch['missing']:.0f} tasks got: "
            + (", ".join(f"{v} {k}" for k, v in sorted(outcome.items())) or "nothing recorded")
            + "."
            + (f" The refusal reads: “{example}”." if example else "")
        )
        if outcome.get("pod created") or launch["missing"]:
            gaps.append(
                f"403 fast path: {outcome.get('pod created', 0)} tasks got a pod in a namespace whose "
                f"RoleBinding was gone, {launch['missing']:.0f} never saw the namespace `forbidden`"
            )
    if "drain_to_stopped" in lat:
        cadence = lat.get("drain_cadence_s", 1.0)
        done = _across(results, "drain_to_task_done")
        done_stop = _across(results, "drain_task_done_to_stopped")
        st = _goal_row(
            results,
            "drain_to_stopped",
            "last pod finished in a draining namespace → watcher stopped",
            gaps,
            f" ({cadence:g} s between the executor's `sync()` calls; pod finished → task no longer "
            f"counted p99 {fmt_ms(done['p99'])} ms of that, the rest, task no longer counted → stopped, "
            f"p99 {fmt_ms(done_stop['p99'])} ms)",
        )
        alone, tried = lat.get("drain_stopped_without_sync", 0), lat.get("drain_without_sync_trials", 0)
        out.append(
            "- **Last pod finished in a draining namespace → watcher stopped**: the admin writes the pod's "
            "status `Succeeded` as a kubelet would (timed from just before that request: one GET of the "
            "pod and the status PATCH). The drain is decided from the executor's task placement; a task "
            "stops counting there once its namespace's pod watcher has put the pod's final result on "
            "upstream's queue (executors/pod_results.py), and leaves it in the executor's `sync()`, "
            "which the scheduler calls once per scheduler loop and which reports the task: here with "
            f"{cadence:g} s between the end of one and the start of the next, as an idle scheduler "
            "sleeps between its loops (`scheduler_idle_sleep_time`, default 1 s). Measured "
            f"p50 {fmt_ms(st['p50'])} ms, p99 {fmt_ms(st['p99'])} ms, of which pod finished → task no "
            f"longer counted p50 {fmt_ms(done['p50'])} ms and p99 "
            f"{fmt_ms(done['p99'])} ms, and from there to the watcher stopped "
            f"p50 {fmt_ms(done_stop['p50'])} ms, p99 {fmt_ms(done_stop['p99'])} ms. Without any "
            f"`sync()` the watcher's event alone stopped the watcher in {alone} of {tried} tries (2 s "
            "waited each)."
        )
