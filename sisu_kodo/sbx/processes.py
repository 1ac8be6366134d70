"""Process control for local sandboxes: limits and uid applied in the child, and a wait that
SIGKILLs the whole tree at the deadline."""

from __future__ import annotations

import contextlib
import os
import resource
import signal
from collections.abc import Callable

from sisu_kodo.deadlines import WaitTimeout, wait_until
from sisu_kodo.sbx.cgroups import TaskCgroup


def child_setup(
    rlimits: list[tuple[int, int]], procs_fds: list[int], uid: int | None
) -> Callable[[], None]:
    """Runs in the forked child before exec: only syscalls, no imports, locks or logging."""

    def setup() -> None:
        for fd in procs_fds:
            os.write(fd, b"0")  # "0" moves the writer itself into the task's cgroup
        for limit, value in rlimits:
            resource.setrlimit(limit, (value, value))
        if uid is not None:
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)

    return setup


def wait_or_kill(
    pid: int, timeout_s: float, group: TaskCgroup | None
) -> tuple[int, resource.struct_rusage, bool]:
    """Reap the child by the deadline, else SIGKILL its whole tree and reap it."""
    # WNOWAIT leaves the child a zombie, so its pid (= the group id) cannot be reused
    # before the group is killed: background leftovers of a finished task go too.
    try:
        wait_until(
            lambda: os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT),
            timeout=timeout_s,
            interval=0.002,
            max_interval=0.05,
            what=f"task process {pid}",
        )
        timed_out = False
    except WaitTimeout:
        timed_out = True
    kill_tree(pid, group)
    _, status, usage = os.wait4(pid, 0)
    return status, usage, timed_out


def kill_tree(pid: int, group: TaskCgroup | None) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
    if group is not None:
        group.kill_all()
