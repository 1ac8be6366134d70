"""The folder of one local attempt: its layout, its atomic JSON files, and whether the
supervisor running it is still alive.

The folder is named by the attempt's identity alone (`sandbox_ref`), so any worker on
this host finds an attempt another worker started. Written by the starting worker:
`plan.json` (what to run). By the supervisor: `supervisor.json` (its pid and start
time), `stdout.log` / `stderr.log`, and `status.json` (how it ended) last, atomically.
By `cancel_run`: the `canceled` marker. Standard library only: the supervisor imports it.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class AttemptDir:
    root: Path

    @property
    def work(self) -> Path:
        return self.root / "work"

    @property
    def tmp(self) -> Path:
        return self.root / "tmp"

    @property
    def plan(self) -> Path:
        return self.root / "plan.json"

    @property
    def status(self) -> Path:
        return self.root / "status.json"

    @property
    def supervisor(self) -> Path:
        return self.root / "supervisor.json"

    @property
    def canceled(self) -> Path:
        return self.root / "canceled"

    @property
    def log(self) -> Path:
        return self.root / "supervisor.log"

    def output(self, stream: str) -> Path:
        return self.root / f"{stream}.log"


def cgroup_name(ref: str) -> str:
    """The name of the attempt's task cgroup (in every hierarchy it joins)."""
    return f"sisu-{ref}"


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    """Readers see the whole file or none of it: a temp file renamed over the target.
    Owner-only: a plan holds the task's env, which may carry its secrets."""
    temp = path.with_name(f".{path.name}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(data, handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temp, path)


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def process_start_time(pid: int) -> int | None:
    """The kernel's start time of a live (not zombie) process: with the pid, an identity
    that a recycled pid cannot fake."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name may hold spaces and parentheses; the fields follow the last ')'.
    fields = stat.rpartition(")")[2].split()
    if not fields or fields[0] in ("Z", "X"):
        return None
    with contextlib.suppress(IndexError, ValueError):
        return int(fields[19])
    return None


def supervisor_pid(attempt: AttemptDir) -> int | None:
    """The pid of the attempt's supervisor while it runs, else None."""
    info = read_json(attempt.supervisor)
    if info is None:
        return None
    pid, started = info.get("pid"), info.get("startTime")
    if isinstance(pid, int) and started is not None and process_start_time(pid) == started:
        return pid
    return None
