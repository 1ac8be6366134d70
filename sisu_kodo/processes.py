"""Our own processes: is a pid (or a pid file's) still alive, and stopping one politely.

Stopping is always the same escalation: SIGTERM, a grace period to finish cleanly, then
SIGKILL; for a child we hold a `Popen` of, and for a bare pid (a pid file's).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from sisu_kodo.deadlines import WaitTimeout, wait_until

# A SIGKILLed process is gone as soon as the kernel has torn it down; this only bounds
# the wait for one stuck in uninterruptible I/O.
KILL_WAIT_SECONDS = 10.0
_PID_POLL_SECONDS = 0.05


def pid_alive(pid: int) -> bool:
    try:
        # Reap it if it is our own exited child, or it would look alive as a zombie.
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read_live_pid(path: Path) -> int | None:
    """The pid in `path`, if that process still runs."""
    try:
        pid = int(path.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    return pid if pid_alive(pid) else None


def terminate_processes(processes: Sequence[subprocess.Popen[Any]], *, grace: float) -> None:
    """SIGTERM every child at once, give them `grace` seconds together, SIGKILL the rest.

    Every child is reaped when this returns.
    """
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + grace
    for process in processes:
        try:
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def stop_pid(pid: int, *, grace: float, stopped: Callable[[], bool] | None = None) -> bool:
    """SIGTERM `pid` and wait up to `grace` seconds for it to exit; True when it did.

    `stopped` says when it is done instead, for a process that is not our child: once
    it exits it stays a zombie (alive to `kill(pid, 0)`) until its own parent reaps it.
    """
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    try:
        wait_until(
            stopped or (lambda: not pid_alive(pid)),
            timeout=grace,
            interval=_PID_POLL_SECONDS,
            what=f"pid {pid} to exit",
        )
    except WaitTimeout:
        return False
    return True


def terminate_pid(pid: int, *, grace: float) -> None:
    """SIGTERM `pid`, SIGKILL it after `grace` seconds; it is gone when this returns."""
    if stop_pid(pid, grace=grace):
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    wait_until(
        lambda: not pid_alive(pid),
        timeout=KILL_WAIT_SECONDS,
        interval=_PID_POLL_SECONDS,
        what=f"pid {pid} to die of SIGKILL",
    )
