"""The lifetime of the processes a test run starts: none may outlive it, however it ends.

Clusters and other long-lived children are stopped by atexit on a normal or exceptional exit,
by a SIGTERM handler when CI times out (SIGTERM skips atexit), and by the kernel when the test
run is SIGKILLed (PR_SET_PDEATHSIG, see die_with_parent).
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import functools
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any, Protocol


class Stoppable(Protocol):
    def stop(self) -> None: ...


_LIVE: set[Stoppable] = set()
_PR_SET_PDEATHSIG = 1
_LIBC = ctypes.CDLL(None, use_errno=True) if sys.platform == "linux" else None


def die_with_parent() -> None:
    """Make the kernel SIGKILL the child when the test run dies, even by SIGKILL, so nothing leaks.

    Pass as ``preexec_fn``: it runs between fork and exec. The "parent" is the forking thread, so
    start from a thread that outlives the child (pytest's main thread does).
    """
    if _LIBC is not None:
        _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def stop_at_exit(owner: Stoppable) -> None:
    """Have ``owner.stop()`` called when the test run exits or is sent SIGTERM, unless
    forget() was called first (its own stop() normally does)."""
    _install_cleanup_hooks()
    _LIVE.add(owner)


def forget(owner: Stoppable) -> None:
    _LIVE.discard(owner)


def _stop_all() -> None:
    for owner in list(_LIVE):
        owner.stop()


def _on_sigterm(previous: Callable[[int, FrameType | None], Any] | int | None) -> Callable[..., None]:
    def handler(signum: int, frame: FrameType | None) -> None:
        _stop_all()
        if callable(previous):
            previous(signum, frame)
        elif previous != signal.SIG_IGN:
            # Re-deliver with the default action so the exit status still says "SIGTERM".
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)

    return handler


@functools.cache
def _install_cleanup_hooks() -> None:
    """atexit covers normal and exceptional exits; SIGTERM (CI timeouts) skips atexit otherwise."""
    atexit.register(_stop_all)
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _on_sigterm(signal.getsignal(signal.SIGTERM)))


def terminate(process: subprocess.Popen[bytes], grace: float) -> None:
    """SIGTERM, then SIGKILL after ``grace`` s; ``grace=0`` kills at once, like a crash."""
    if process.poll() is not None:
        return
    if grace > 0:
        process.terminate()
        try:
            process.wait(grace)
            return
        except subprocess.TimeoutExpired:
            pass
    process.kill()
    process.wait()


_TMP_PREFIX = "nsd-harness-"
_OWNER_FILE = "owner.pid"


def owned_tmpdir(kind: str) -> Path:
    """A fresh directory for one server of this run, marked with the run's pid.

    A SIGKILLed run's servers die with it (PDEATHSIG) but nothing deletes their directories, so
    each new one first sweeps those whose owner is gone; a directory whose owner is alive, or
    that cannot be judged (unreadable, another user's process), is left alone.
    """
    for directory in Path(tempfile.gettempdir()).glob(f"{_TMP_PREFIX}*"):
        try:
            os.kill(int((directory / _OWNER_FILE).read_text()), 0)
        except ProcessLookupError:
            shutil.rmtree(directory, ignore_errors=True)
        except (OSError, ValueError):
            continue
    path = Path(tempfile.mkdtemp(prefix=f"{_TMP_PREFIX}{kind}-"))
    (path / _OWNER_FILE).write_text(str(os.getpid()))
    return path


def free_ports(count: int) -> list[int]:
    """Ports the kernel picked; all are held open together so they cannot coincide."""
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]


def tail(path: Path, lines: int = 40) -> str:
    """The end of a child's log, for an error message that says why it failed."""
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])
