"""What the bench reads besides the executors' own hooks: the API server's /metrics, process trees
from /proc (memory, threads, CPU, TCP connections to the API server), the machine's other load, and
the pod watchers' watch-open log lines."""

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


_ESTABLISHED = "01"


def _established_to(port: int) -> set[int]:
    """Socket inodes of every ESTABLISHED TCP connection on this machine to ``port``."""
    out: set[int] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                if fields[3] == _ESTABLISHED and int(fields[2].rsplit(":", 1)[1], 16) == port:
                    out.add(int(fields[9]))
    return out


def _socket_inodes(pids: list[int]) -> set[int]:
    """Inodes of the sockets the processes ``pids`` hold open, from their /proc/<pid>/fd links."""
    out: set[int] = set()
    for pid in pids:
        with contextlib.suppress(OSError):
            for fd in os.listdir(f"/proc/{pid}/fd"):
                with contextlib.suppress(OSError):
                    target = os.readlink(f"/proc/{pid}/fd/{fd}")
                    if target.startswith("socket:["):
                        out.add(int(target[8:-1]))
    return out


class ConnectionSampler:
    """Once a second: new TCP connections to the API server, all clients and those of one process tree.

    A connection is new when its socket (inode) was not ESTABLISHED to the API server's port in the
    previous sample; not its local port, which loopback reuses at once (``tcp_tw_reuse``), so a
    connection replaced within the second would hide its successor. It is the executor's when the
    inode is held by a process of the tree rooted at ``pid`` (read from /proc/<pid>/fd right after
    /proc/net/tcp, only when a sample shows new sockets). Every connection to kube-apiserver is TLS,
    so this counts TLS handshakes too. Sampled, not traced: a connection opened and closed between
    two samples is not seen.
    """

    def __init__(self, port: int, pid: int, interval: float = 1.0) -> None:
        self.port, self.pid = port, pid
        self.new_all = 0
        self.new_tree = 0
        self.samples = 0
        self._interval = interval
        self._lock = threading.Lock()
        self._pids: list[int] = []
        self._pids_at = float("-inf")
        self._stop = threading.Event()
        self._seen = _established_to(port)
        self._thread = threading.Thread(target=self._run, name="conn-sampler", daemon=True)
        self._thread.start()

    def _tree_pids(self) -> list[int]:
        # Upstream's tree is a thousand processes: listed again every 10 s, not every second.
        if time.monotonic() - self._pids_at > 10:
            with contextlib.suppress(psutil.Error):
                root = psutil.Process(self.pid)
                self._pids = [self.pid, *(p.pid for p in root.children(recursive=True))]
            self._pids_at = time.monotonic()
        return self._pids

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            now = _established_to(self.port)
            new = now - self._seen
            mine = len(new & _socket_inodes(self._tree_pids())) if new else 0
            with self._lock:
                self.new_all += len(new)
                self.new_tree += mine
                self.samples += 1
            self._seen = now

    def read(self) -> dict[str, int]:
        """Counts so far (subtract two readings for a bucket)."""
        with self._lock:
            return {"new_all": self.new_all, "new_tree": self.new_tree, "samples": self.samples}

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
