"""What the bench reads besides the executors' own hooks: the API server's /metrics, process trees
from /proc (memory, threads, CPU), the machine's other load, and upstream's watch-open log lines."""

from __future__ import annotations

import contextlib
import os
import re
import statistics
import threading
import time
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil

_WATCH_BEGINS = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+)Z?.*and now my watch begins")


def watch_opens(log_path: Path, wall0: float) -> list[float]:
    """Seconds after start() at which a pod watcher (re)opened its watch, from upstream's own log line."""
    out = []
    with contextlib.suppress(OSError):
        for line in log_path.read_text(errors="replace").splitlines():
            match = _WATCH_BEGINS.match(line)
            if match:
                when = datetime.fromisoformat(match.group(1)).replace(tzinfo=UTC).timestamp()
                out.append(when - wall0)
    return out


def process_tree(pid: int) -> dict[str, Any]:
    """Processes, threads and memory of ``pid`` and all its descendants (the Managers, watchers)."""
    root = psutil.Process(pid)
    procs = [root, *root.children(recursive=True)]
    out = {
        "processes": 0,
        "threads": 0,
        "rss": 0,
        "pss": 0,
        "uss": 0,
        "main_threads": root.num_threads(),
    }
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            full = proc.memory_full_info()
            out["processes"] += 1
            out["threads"] += proc.num_threads()
            out["rss"] += full.rss
            out["pss"] += full.pss
            out["uss"] += full.uss
    return out


def cpu_seconds(pid: int, tree: bool = True) -> float:
    """User + system CPU seconds of a process (and, with ``tree``, of its live descendants)."""
    proc = psutil.Process(pid)
    procs = [proc, *proc.children(recursive=True)] if tree else [proc]
    seconds = 0.0
    for p in procs:
        with contextlib.suppress(psutil.Error):
            times = p.cpu_times()
            seconds += times.user + times.system
    return seconds


# A process, told apart from a later one that reuses its pid.
_Key = tuple[int, float]


class CpuSampler:
    """Once a second: how many CPUs were busy, and how many of them with something else than this bench.

    The machine may be shared; "other" CPU (all busy CPU time in /proc/stat minus that of the bench
    process and all its descendants: control plane, executors, watcher processes) says how much the
    numbers of a phase may be disturbed. Both are computed over the same /proc/stat interval.

    The bench's own CPU is summed per process, each with the CPU of the children it has reaped
    (``children_user``/``children_system``). When a process disappears, its total moves into its
    parent's reaped-children counters if that parent is one of ours, so its last counted value is
    subtracted once; a process orphaned by a killed process group is reaped by init instead, and only
    its CPU since the last sample is lost (an underestimate of ours, so "other" is clamped to what was
    busy). Summing the live tree alone, as before, made "other" jump by the whole CPU history of a
    tree that exited (tens of CPUs for one second).
    """

    def __init__(self, interval: float = 1.0) -> None:
        self.phase = "setup"
        self.samples: list[dict[str, Any]] = []
        self._interval = interval
        self._cpus = os.cpu_count() or 1
        self._hz = os.sysconf("SC_CLK_TCK")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="cpu-sampler", daemon=True)
        self._thread.start()

    @staticmethod
    def _stat() -> tuple[float, float]:
        """(all ticks, busy ticks) of the machine, from the first line of /proc/stat."""
        fields = [float(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
        idle = fields[3] + fields[4]
        return sum(fields[:8]), sum(fields[:8]) - idle

    @staticmethod
    def _tree() -> dict[_Key, tuple[float, int]]:
        """Per process of ours (this one included): (CPU seconds incl. reaped children, parent pid)."""
        me = psutil.Process()
        out: dict[_Key, tuple[float, int]] = {}
        for proc in [me, *me.children(recursive=True)]:
            with contextlib.suppress(psutil.Error):
                t = proc.cpu_times()
                seconds = t.user + t.system + t.children_user + t.children_system
                out[(proc.pid, proc.create_time())] = (seconds, proc.ppid())
        return out

    @staticmethod
    def ours_delta(before: dict[_Key, tuple[float, int]], after: dict[_Key, tuple[float, int]]) -> float:
        """CPU seconds our process tree used between two ``_tree()`` readings (see the class doc)."""
        alive = {pid for pid, _ in after}
        seconds = sum(value - before.get(key, (0.0, 0))[0] for key, (value, _) in after.items())
        for key, (value, parent) in before.items():
            if key not in after and parent in alive:
                seconds -= value  # now inside its parent's reaped-children counters, counted above
        return max(0.0, seconds)

    def _run(self) -> None:
        total0, busy0 = self._stat()
        tree0 = self._tree()
        while not self._stop.wait(self._interval):
            total1, busy1 = self._stat()
            tree1 = self._tree()
            if total1 > total0:
                span = total1 - total0
                busy = (busy1 - busy0) / span * self._cpus
                ours = self.ours_delta(tree0, tree1) * self._hz / span * self._cpus
                other = min(busy, max(0.0, busy - ours))
                self.samples.append(
                    {"phase": self.phase, "busy": busy, "other": other, "t": time.monotonic()}
                )
            total0, busy0, tree0 = total1, busy1, tree1

    def mark(self) -> int:
        """A position in the samples; ``since(mark)`` summarizes the other load from there on."""
        return len(self.samples)

    def since(self, mark: int) -> dict[str, float]:
        rows = self.samples[mark:]
        if not rows:
            return {"seconds": 0, "other": 0.0, "other_max": 0.0}
        return {
            "seconds": len(rows),
            "other": statistics.fmean(r["other"] for r in rows),
            "other_max": max(r["other"] for r in rows),
        }

    def stop(self) -> list[dict[str, Any]]:
        self._stop.set()
        self._thread.join(5)
        by_phase: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for sample in self.samples:
            by_phase[sample["phase"]].append(sample)
        return [
            {
                "phase": phase,
                "seconds": len(rows),
                "busy": statistics.fmean(r["busy"] for r in rows),
                "other": statistics.fmean(r["other"] for r in rows),
                "other_max": max(r["other"] for r in rows),
            }
            for phase, rows in by_phase.items()
        ]


SAMPLER: CpuSampler | None = None


def start_sampler() -> CpuSampler:
    global SAMPLER  # noqa: PLW0603 - one sampler per bench run, read by phase() and other_load()
    SAMPLER = CpuSampler()
    return SAMPLER


def phase(name: str) -> None:
    if SAMPLER is not None:
        SAMPLER.phase = name


def load_mark() -> int:
    return SAMPLER.mark() if SAMPLER is not None else 0


def other_load(mark: int) -> dict[str, float]:
    """Mean and max CPUs busy with other work since ``load_mark()``: stored beside each run's numbers."""
    return SAMPLER.since(mark) if SAMPLER is not None else {"seconds": 0, "other": 0.0, "other_max": 0.0}


def mem_available() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    return 0
