"""Per-task cgroups: an exact memory cap, the peak, OOM kills, CPU time, killing every member.

A task gets a child of this process's own memory cgroup, on cgroup v2 when its
memory controller is usable there, else on a writable v1 `memory` hierarchy (plus
a `cpuacct` sibling for CPU time, since bwrap's pid namespace hides it from rusage,
and a `pids` sibling whose `pids.max` bounds the task's processes: RLIMIT_NPROC counts
per uid, so one task's fork bomb would starve every task sharing the sandbox uid).
When neither is writable (containers, unprivileged users) `TaskCgroup.create`
returns None and the caller falls back to RLIMIT_AS.
"""

from __future__ import annotations

import contextlib
import os
import signal
from dataclasses import dataclass
from pathlib import Path

from sisu_kodo.deadlines import WaitTimeout, wait_until

CGROUP_ROOT = Path("/sys/fs/cgroup")
_RMDIR_DEADLINE_S = 2.0


@dataclass(frozen=True)
class _Layout:
    """Where the files of one cgroup version live and what they are called."""

    parent: Path
    limit: str
    swap_limit: str
    peak: str
    events: str
    oom_key: str
    kill: str | None
    cpu: Path | None
    pids: Path | None


def _own_cgroup_path(controller: str | None) -> str | None:
    """This process's cgroup for a v1 controller, or the v2 one (controller None)."""
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if (controller is None and controllers == "") or (
            controller is not None and controller in controllers.split(",")
        ):
            return path
    return None


def _layouts() -> list[_Layout]:
    found: list[_Layout] = []
    v2 = _own_cgroup_path(None)
    if v2 is not None and (CGROUP_ROOT / "cgroup.controllers").exists():
        found.append(
            _Layout(
                CGROUP_ROOT / v2.lstrip("/"),
                "memory.max",
                "memory.swap.max",
                "memory.peak",
                "memory.events",
                "oom_kill",
                "cgroup.kill",
                None,
                None,
            )
        )
    v1 = _own_cgroup_path("memory")
    v1_cpu = _own_cgroup_path("cpuacct")
    v1_pids = _own_cgroup_path("pids")
    if v1 is not None and (CGROUP_ROOT / "memory").is_dir():
        found.append(
            _Layout(
                CGROUP_ROOT / "memory" / v1.lstrip("/"),
                "memory.limit_in_bytes",
                "memory.memsw.limit_in_bytes",
                "memory.max_usage_in_bytes",
                "memory.oom_control",
                "oom_kill",
                None,
                CGROUP_ROOT / "cpuacct" / v1_cpu.lstrip("/") if v1_cpu is not None else None,
                CGROUP_ROOT / "pids" / v1_pids.lstrip("/") if v1_pids is not None else None,
            )
        )
    return found


class TaskCgroup:
    """One task's memory cgroup; remove() kills what is left and deletes it."""

    def __init__(self, path: Path, layout: _Layout) -> None:
        self.path = path
        self._layout = layout
        self._cpu_path = _sibling(layout.cpu, path.name)
        self._pids_path = _sibling(layout.pids, path.name)
        self.max_processes: int | None = None

    @classmethod
    def create(
        cls, name: str, memory_mb: int | None, max_processes: int | None = None
    ) -> TaskCgroup | None:
        """A new cgroup with the caps applied, or None when this machine does not allow one.

        `max_processes` is best effort: `max_processes` on the result says whether it held.
        """
        for layout in _layouts():
            path = layout.parent / name
            try:
                path.mkdir()
            except OSError:
                continue
            group = cls(path, layout)
            if memory_mb is None or group._cap(memory_mb * 1024 * 1024):
                if max_processes is not None:
                    group._cap_processes(max_processes)
                return group
            group.remove()
        return None

    @classmethod
    def find(cls, name: str) -> TaskCgroup | None:
        """The task cgroup a dead supervisor left, so its members can be killed."""
        for layout in _layouts():
            if (layout.parent / name).is_dir():
                return cls(layout.parent / name, layout)
        return None

    def _cap_processes(self, limit: int) -> None:
        # v1 has its own pids hierarchy; on v2 pids.max sits next to memory.max.
        where = self._pids_path or self.path
        with contextlib.suppress(OSError):
            (where / "pids.max").write_text(str(limit))
            self.max_processes = limit

    def _cap(self, limit: int) -> bool:
        try:
            (self.path / self._layout.limit).write_text(str(limit))
        except OSError:
            return False
        # Without a swap cap a task may swap instead of being OOM-killed; absent files are fine.
        with contextlib.suppress(OSError):
            (self.path / self._layout.swap_limit).write_text(str(limit))
        return True

    @property
    def procs_files(self) -> list[Path]:
        """Every `cgroup.procs` a task's first process must join (one per v1 hierarchy)."""
        extra = [p / "cgroup.procs" for p in (self._cpu_path, self._pids_path) if p is not None]
        return [self.path / "cgroup.procs", *extra]

    def cpu_ms(self) -> int | None:
        try:
            if self._cpu_path is not None:
                return int((self._cpu_path / "cpuacct.usage").read_text()) // 1_000_000
            for line in (self.path / "cpu.stat").read_text().splitlines():
                key, _, value = line.partition(" ")
                if key == "usage_usec":
                    return int(value) // 1000
        except (OSError, ValueError):
            return None
        return None

    def peak_mb(self) -> float | None:
        try:
            return int((self.path / self._layout.peak).read_text()) / (1024 * 1024)
        except (OSError, ValueError):
            return None

    def oom_killed(self) -> bool:
        try:
            text = (self.path / self._layout.events).read_text()
        except OSError:
            return False
        for line in text.splitlines():
            key, _, value = line.partition(" ")
            if key == self._layout.oom_key and value.strip() not in ("", "0"):
                return True
        return False

    def kill_all(self) -> None:
        """SIGKILL every member, including processes that left the task's session."""
        if self._layout.kill is not None:
            with contextlib.suppress(OSError):
                (self.path / self._layout.kill).write_text("1")
                return
        for pid in self._members():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)

    def _members(self) -> list[int]:
        try:
            return [int(p) for p in (self.path / "cgroup.procs").read_text().split()]
        except (OSError, ValueError):
            return []

    def remove(self) -> None:
        """Kill the members, then delete the cgroup once the kernel has let them go."""
        # Past the deadline the (empty or unkillable) cgroup is left for the system to reap.
        with contextlib.suppress(WaitTimeout):
            wait_until(
                self._try_remove, timeout=_RMDIR_DEADLINE_S, interval=0.01, what=str(self.path)
            )

    def _try_remove(self) -> bool:
        self.kill_all()
        try:
            for sibling in (self._cpu_path, self._pids_path):
                if sibling is not None:
                    with contextlib.suppress(FileNotFoundError):
                        sibling.rmdir()
            self.path.rmdir()
        except FileNotFoundError:
            return True
        except OSError:
            return False
        return True


def _sibling(hierarchy: Path | None, name: str) -> Path | None:
    """The task's cgroup in another v1 hierarchy (cpuacct, pids), or None where not writable."""
    if hierarchy is None:
        return None
    try:
        (hierarchy / name).mkdir(exist_ok=True)
    except OSError:
        return None
    return hierarchy / name
