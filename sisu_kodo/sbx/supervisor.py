"""The supervisor of one local attempt: `python -m sisu_kodo.sbx.supervisor <attempt folder>`.

Started by the worker in its own session, it detaches (forks; the launcher exits once
the daemon has recorded its pid), so the sandbox outlives the worker and a recovering
worker collects the attempt instead of running it again. It runs the command from
`plan.json` (in bwrap, whose `--die-with-parent` ties the sandbox to this process, not
to the worker), enforces the wall deadline with no worker alive, kills the tree on
SIGTERM (a cancel), and writes `status.json` atomically when done.
Standard library only (and its siblings): it starts once per attempt.
"""

from __future__ import annotations

import contextlib
import os
import resource
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from sisu_kodo.sbx.attempts import (
    AttemptDir,
    cgroup_name,
    process_start_time,
    read_json,
    write_json_atomic,
)
from sisu_kodo.sbx.bwrap import sandbox_argv, sandbox_started
from sisu_kodo.sbx.cgroups import TaskCgroup
from sisu_kodo.sbx.processes import child_setup, kill_tree, wait_or_kill


@dataclass
class _Running:
    """The command in flight, so the SIGTERM handler can kill its tree."""

    pid: int | None = None
    group: TaskCgroup | None = None
    canceled: bool = False


def main(argv: list[str]) -> int:
    attempt = AttemptDir(Path(argv[1]))
    ready_read, ready_write = os.pipe()
    if os.fork() != 0:
        # The launcher: exit once the daemon recorded itself, so `start` returns only
        # when a recovering worker can already see a live supervisor.
        os.close(ready_write)
        with os.fdopen(ready_read, "rb") as ready:
            return 0 if ready.read(1) == b"1" else 1
    os.close(ready_read)
    return _supervise(attempt, ready_write)


def _supervise(attempt: AttemptDir, ready_fd: int) -> int:
    running = _Running()
    signal.signal(signal.SIGTERM, lambda signum, frame: _cancel(running, signum, frame))
    pid = os.getpid()
    write_json_atomic(attempt.supervisor, {"pid": pid, "startTime": process_start_time(pid)})
    os.write(ready_fd, b"1")
    os.close(ready_fd)
    plan = read_json(attempt.plan)
    started = time.monotonic()
    status: dict[str, Any]
    try:
        status = _execute(attempt, plan, running) if plan else {"bootError": "no plan"}
    except Exception as exc:  # the process edge: any failure must still leave a status
        status = {"bootError": f"supervisor failed: {type(exc).__name__}: {exc}"}
    status["wallMs"] = int((time.monotonic() - started) * 1000)
    status["canceled"] = running.canceled or attempt.canceled.exists()
    write_json_atomic(attempt.status, status)
    return 0


def _cancel(running: _Running, signum: int, frame: FrameType | None) -> None:
    running.canceled = True
    if running.pid is not None:
        kill_tree(running.pid, running.group)


def _execute(attempt: AttemptDir, plan: dict[str, Any], running: _Running) -> dict[str, Any]:
    name = cgroup_name(attempt.root.name)
    group = TaskCgroup.create(name, plan["memoryMb"], plan["maxProcesses"])
    try:
        limits = [(int(kind), int(value)) for kind, value in plan["rlimits"]]
        if group is None or group.max_processes is None:
            # No pids cgroup: RLIMIT_NPROC (per uid, shared by tasks) is what is left.
            limits.append((resource.RLIMIT_NPROC, plan["maxProcesses"]))
        if group is None and plan["memoryMb"] is not None:
            limits.append((resource.RLIMIT_AS, plan["memoryMb"] * 1024 * 1024))
        bwrap_status = attempt.root / "bwrap-status.json"
        with contextlib.ExitStack() as stack:
            out = stack.enter_context(attempt.output("stdout").open("wb"))
            err = stack.enter_context(attempt.output("stderr").open("wb"))
            status_file = stack.enter_context(bwrap_status.open("wb"))
            argv = ["/bin/sh", "-c", plan["command"]]
            if plan["bwrap"] is not None:
                argv = (
                    sandbox_argv(plan["bwrap"], attempt.work, plan["network"], status_file.fileno())
                    + argv
                )
            procs_fds = [os.open(f, os.O_WRONLY) for f in group.procs_files] if group else []
            try:
                proc = subprocess.Popen(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=err,
                    env=plan["env"],
                    cwd=attempt.work,
                    start_new_session=True,
                    pass_fds=(status_file.fileno(),),
                    preexec_fn=child_setup(limits, procs_fds, plan["uid"]),
                )
            except (OSError, ValueError, subprocess.SubprocessError) as exc:
                return {"bootError": f"cannot start: {exc}"}
            finally:
                for fd in procs_fds:
                    os.close(fd)
            # Reaped by wait4 (for rusage): Popen must not think it still runs.
            proc.returncode = 0
            running.pid, running.group = proc.pid, group
            if running.canceled:  # SIGTERM arrived while spawning
                kill_tree(proc.pid, group)
            wait_status, usage, timed_out = wait_or_kill(proc.pid, plan["timeoutS"], group)
        status: dict[str, Any] = {
            "exitCode": os.waitstatus_to_exitcode(wait_status),
            "timedOut": timed_out,
            "oom": group.oom_killed() if group else False,
        }
        status["cpuMs"], status["memPeakMb"] = _usage(group, usage, plan["bwrap"] is None)
        if plan["bwrap"] is not None and not sandbox_started(bwrap_status):
            status["bootError"] = "bubblewrap could not set up the sandbox"
        return status
    finally:
        if group is not None:
            group.remove()


def _usage(
    group: TaskCgroup | None, usage: resource.struct_rusage, plain: bool
) -> tuple[int | None, float | None]:
    """CPU and peak memory: the cgroup's when there is one, else rusage, which only sees
    the whole tree without bwrap (its pid namespace's init never hands the times up)."""
    cpu_ms = group.cpu_ms() if group else None
    peak = group.peak_mb() if group else None
    if cpu_ms is None and plain:
        cpu_ms = int((usage.ru_utime + usage.ru_stime) * 1000)
    if peak is None and plain:
        peak = usage.ru_maxrss / 1024
    return cpu_ms, peak


if __name__ == "__main__":
    sys.exit(main(sys.argv))
