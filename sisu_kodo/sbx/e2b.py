"""The E2B provider: one E2B sandbox per attempt through the official `e2b` SDK.

The sandbox is tagged with the run, task and attempt so a recovered attempt finds and
kills what a crashed worker left, and `sweep_orphans` kills sandboxes whose run is over.
E2B exceptions are mapped in `classify_e2b` (order matters: several classes subclass
each other) and fall back to the shared taxonomy in `failures`.
"""

from __future__ import annotations

import contextlib
import shlex
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from functools import partial
from typing import Any

import httpx
from connectrpc.errors import ConnectError
from e2b import (
    AuthenticationException,
    CommandExitException,
    RateLimitException,
    Sandbox,
    SandboxException,
    SandboxQuery,
    ServiceBusyException,
    TimeoutException,
)
from e2b.exceptions import (
    SandboxNotFoundException,
    SandboxNotRunningException,
    SandboxUnreachableException,
)

from sisu_kodo.contracts.sandbox import ErrCode, FileOut, SandboxRequest, SandboxResult
from sisu_kodo.contracts.workspaces import WorkspaceDiff
from sisu_kodo.sbx.failures import classify_exception, classify_exit
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
from sisu_kodo.sbx.results import DEFAULT_OUTPUT_CAP_BYTES, Captured, sandbox_result
from sisu_kodo.workspaces import diff_files, files_of, read_archive, read_snapshot
from sisu_kodo.workspaces.diffs import WORK_TREE_CAPS
from sisu_kodo.workspaces.errors import ArchiveError

OWNER_KEY = "sisu.owner"
OWNER_VALUE = "sisu-kodo"
DEADLINE_KEY = "sisu.deadline"
# Inside the work folder (the one place the sandbox user can write in every template);
# never collected as a file out.
STATUS_DIR = ".sisu"
# The sandbox outlives the command by this much, so a crashed worker's sandbox still dies.
_LIFETIME_MARGIN_S = 60
# The snapshot is uploaded as one tar and unpacked in the work folder; after the command
# the work folder comes back as one tar (without STATUS_DIR) for the diff.
WORKSPACE_TAR = f"{STATUS_DIR}/workspace.tar"
AFTER_TAR = f"{STATUS_DIR}/after.tar"


class Phase(StrEnum):
    """Where an exception came from; it decides what a generic SDK error means."""

    CREATE = "create"
    UPLOAD = "upload"
    COMMAND = "command"
    DOWNLOAD = "download"


_GENERIC_BY_PHASE = {
    Phase.CREATE: ErrCode.BOOT_FAIL,
    Phase.UPLOAD: ErrCode.UPLOAD_FAIL,
    Phase.DOWNLOAD: ErrCode.DOWNLOAD_FAIL,
}


def classify_e2b(exc: BaseException, phase: Phase) -> ErrCode:
    """The errCode of an E2B SDK exception; the order is the research note's, subclasses first."""
    ordered: tuple[tuple[type[BaseException] | tuple[type[BaseException], ...], ErrCode], ...] = (
        (CommandExitException, ErrCode.CMD_NONZERO),
        # A lost sandbox (killed, expired, unreachable) is an infrastructure fault: NET_FAIL.
        ((SandboxNotRunningException, SandboxNotFoundException), ErrCode.NET_FAIL),
        (SandboxUnreachableException, ErrCode.NET_FAIL),
        (TimeoutException, ErrCode.TIMEOUT),
        (AuthenticationException, ErrCode.AUTH),
        ((RateLimitException, ServiceBusyException), ErrCode.RATE_LIMIT),
        ((httpx.TransportError, ConnectError, OSError), ErrCode.NET_FAIL),
    )
    for types, code in ordered:
        if isinstance(exc, types):
            return code
    if isinstance(exc, SandboxException) and phase in _GENERIC_BY_PHASE:
        return _GENERIC_BY_PHASE[phase]
    return classify_exception(exc)


@dataclass(frozen=True)
class E2BConnection:
    """Where the E2B API is; every field is passed to the SDK explicitly, so the SDK's own
    environment fallbacks (E2B_DOMAIN, E2B_DEBUG...) never decide for us."""

    api_key: str | None
    domain: str | None = None
    api_url: str | None = None
    sandbox_url: str | None = None
    request_timeout_s: float = 30.0
    http_version: str = "2"
    retries: int = 3

    def params(self) -> dict[str, Any]:
        return {
            "api_key": self.api_key,
            "domain": self.domain,
            "api_url": self.api_url,
            "sandbox_url": self.sandbox_url,
            "request_timeout": self.request_timeout_s,
            "http_version": self.http_version,
            "retries": self.retries,
            "debug": False,
        }


class _Failed(Exception):
    """An attempt step failed; carries the errCode so `run` builds one result."""

    def __init__(self, code: ErrCode, message: str) -> None:
        super().__init__(message)
        self.code = code


class E2BSandboxProvider:
    """Runs each attempt in a fresh E2B sandbox and always kills it afterwards."""

    name = "e2b"

    def __init__(
        self,
        connection: E2BConnection,
        *,
        template: str = "base",
        workdir: str = "/home/user",
        output_cap_bytes: int = DEFAULT_OUTPUT_CAP_BYTES,
        resolver: ArtifactResolver | None = None,
        snapshots: SnapshotReader | None = None,
    ) -> None:
        self._conn = connection
        self._snapshots = snapshots
        self._template = template
        self._workdir = workdir.rstrip("/")
        self._cap = output_cap_bytes
        self._resolver = resolver
        self._failed_starts: dict[str, _Attempt] = {}
        self._canceled_runs: set[str] = set()
        self._started: dict[str, tuple[float, int | None]] = {}

    def health(self) -> ProviderHealth:
        try:
            Sandbox.list(
                query=SandboxQuery(metadata={OWNER_KEY: OWNER_VALUE}),
                limit=1,
                **self._conn.params(),
            ).next_items()
        except Exception as exc:  # health reports any failure instead of raising it
            code = classify_e2b(exc, Phase.CREATE)
            return ProviderHealth(
                provider=self.name,
                ok=False,
                detail=f"{code.value}: {type(exc).__name__}: {exc}",
                isolation="microvm",
            )
        where = self._conn.api_url or f"api.{self._conn.domain or 'e2b.app'}"
        return ProviderHealth(
            provider=self.name, ok=True, detail=f"E2B API at {where}", isolation="microvm"
        )

    # --- the port ---

    def run(self, request: SandboxRequest) -> SandboxResult:
        return self.wait(request, self.start(request))

    def start(self, request: SandboxRequest) -> str:
        """Find the attempt's sandbox by its metadata, else create it and launch the
        command detached (its output and exit status go to files in the sandbox, so any
        worker can collect them after reconnecting). A failure to start is remembered
        and reported by `wait`."""
        state = _Attempt(request=request, started=time.monotonic())
        try:
            existing = self._guard(Phase.CREATE, lambda: self._ours(**_identity(request)))
            if existing:
                return str(existing[0].sandbox_id)
            self._guard(Phase.CREATE, lambda: self.kill_leftovers(request.taskKey))
            self._create(state)
            self._upload_workspace(state)
            self._upload(state)
            self._launch(state)
        except _Failed as failed:
            state.err, state.message = failed.code, str(failed)
            if state.sandbox is not None:
                with contextlib.suppress(Exception):  # its lifetime kills it anyway
                    state.sandbox.kill()
            ref = f"e2b-failed-{uuid.uuid4().hex[:12]}"
            self._failed_starts[ref] = state
            return ref
        ref = str(state.sandbox.sandbox_id)
        self._started[ref] = (state.started, state.boot_ms)
        return ref

    def wait(self, request: SandboxRequest, ref: str) -> SandboxResult:
        never_started = self._failed_starts.pop(ref, None)
        if never_started is not None:
            return self._result(never_started)
        # Started here: time the whole attempt; collected after a crash: from now.
        started, state_boot = self._started.pop(ref, (time.monotonic(), None))
        state = _Attempt(request=request, started=started, boot_ms=state_boot)
        try:
            state.sandbox = self._guard(
                Phase.COMMAND, lambda: Sandbox.connect(ref, **self._conn.params())
            )
            self._await_exit(state)
            if request.collect and state.err in (None, ErrCode.CMD_NONZERO):
                state.files_out = self._download(state)
            if request.workspaceSha256 and state.err in (None, ErrCode.CMD_NONZERO):
                state.diff = self._workspace_diff(state, request.workspaceSha256)
        except _Failed as failed:
            state.err, state.message = failed.code, str(failed)
            if self._gone(ref):  # killed under us (a cancel) or expired: nothing to collect
                state.err, state.message = self._why_gone(request)
        finally:
            with contextlib.suppress(Exception):  # the sandbox's lifetime kills it anyway
                Sandbox.kill(ref, **self._conn.params())
        state.ref = ref
        return self._result(state)

    def cancel_run(self, run_id: str) -> list[str]:
        self._canceled_runs.add(run_id)
        return self._kill_each(self._ours(runId=run_id))

    def _guard(self, phase: Phase, action: Callable[[], Any]) -> Any:
        try:
            return action()
        except FileTransferError as exc:
            raise _Failed(_GENERIC_BY_PHASE.get(phase, ErrCode.BOOT_FAIL), str(exc)) from exc
        except Exception as exc:  # every SDK failure becomes an errCode, see classify_e2b
            raise _Failed(classify_e2b(exc, phase), f"{type(exc).__name__}: {exc}") from exc

    def _create(self, state: _Attempt) -> None:
        request = state.request
        metadata = {
            OWNER_KEY: OWNER_VALUE,
            **_identity(request),
            # Epoch seconds: a worker collecting after a crash enforces the same deadline.
            DEADLINE_KEY: f"{time.time() + request.timeoutMs / 1000:.3f}",
        }
        boot = time.monotonic()
        state.sandbox = self._guard(
            Phase.CREATE,
            lambda: Sandbox.create(
                template=request.image or self._template,
                timeout=int(request.timeoutMs / 1000) + _LIFETIME_MARGIN_S,
                metadata=metadata,
                envs=request.env,
                allow_internet_access=request.network,
                **self._conn.params(),
            ),
        )
        state.boot_ms = int((time.monotonic() - boot) * 1000)

    def _upload_workspace(self, state: _Attempt) -> None:
        """The snapshot into the work folder: one tar uploaded, unpacked, removed."""
        sha256 = state.request.workspaceSha256
        if sha256 is None:
            return
        sandbox = state.sandbox
        raw = self._guard(Phase.UPLOAD, lambda: snapshot_bytes(self._snapshots, sha256))
        self._guard(
            Phase.UPLOAD, lambda: sandbox.files.write(f"{self._workdir}/{WORKSPACE_TAR}", raw)
        )
        unpack = f"tar -xf {WORKSPACE_TAR} --no-same-owner && rm -f {WORKSPACE_TAR}"
        self._guard(Phase.UPLOAD, lambda: self._transfer_command(sandbox, unpack))

    def _workspace_diff(self, state: _Attempt, sha256: str) -> WorkspaceDiff:
        """The work folder comes back as one tar, read as safely as an upload."""
        sandbox = state.sandbox
        pack = f"tar -cf {AFTER_TAR} --exclude=./{STATUS_DIR} ."
        self._guard(Phase.DOWNLOAD, lambda: self._transfer_command(sandbox, pack))
        path = f"{self._workdir}/{AFTER_TAR}"
        after = bytes(self._guard(Phase.DOWNLOAD, lambda: sandbox.files.read(path, "bytes")))
        before = self._guard(Phase.DOWNLOAD, lambda: snapshot_bytes(self._snapshots, sha256))
        diff: WorkspaceDiff = self._guard(Phase.DOWNLOAD, lambda: _diff_of(before, after))
        return diff

    def _transfer_command(self, sandbox: Any, command: str) -> None:
        """A command moving the workspace; its failure is a transfer's, not the task's."""
        try:
            sandbox.commands.run(command, cwd=self._workdir)
        except CommandExitException as exc:
            raise FileTransferError(f"`{command}` failed: {exc}") from exc

    def _upload(self, state: _Attempt) -> None:
        sandbox = state.sandbox
        for file in state.request.files:

            def write(f: Any = file) -> None:
                path = f"{self._workdir}/{safe_relpath(f.path)}"
                sandbox.files.write(path, file_in_bytes(f, self._resolver))

            self._guard(Phase.UPLOAD, write)

    def _launch(self, state: _Attempt) -> None:
        sandbox, request = state.sandbox, state.request
        wrapper = (
            f'S="$PWD/{STATUS_DIR}"; mkdir -p "$S";'
            f' /bin/bash -c {shlex.quote(request.command)} >"$S/stdout" 2>"$S/stderr" </dev/null;'
            ' echo $? >"$S/exit.tmp"; mv "$S/exit.tmp" "$S/exit"'
        )
        handle = self._guard(
            Phase.COMMAND,
            lambda: sandbox.commands.run(
                wrapper, background=True, envs=request.env, cwd=self._workdir, timeout=0
            ),
        )
        # The command goes on in the sandbox; whoever waits reads its files.
        handle.disconnect()

    def _await_exit(self, state: _Attempt) -> None:
        """Block in the sandbox until the exit file appears, up to the attempt's deadline."""
        sandbox, request = state.sandbox, state.request
        infos = self._guard(Phase.COMMAND, lambda: self._ours(**_identity(request)))
        deadline = (
            float((infos[0].metadata or {}).get(DEADLINE_KEY, 0) if infos else 0)
            or time.time() + request.timeoutMs / 1000
        )
        remaining = max(deadline - time.time(), 0.001)
        poll = f"while [ ! -e {STATUS_DIR}/exit ]; do sleep 0.05; done"
        try:
            sandbox.commands.run(poll, cwd=self._workdir, timeout=remaining)
        except Exception as exc:  # mapped below: our deadline, or the sandbox went away
            code = classify_e2b(exc, Phase.COMMAND)
            message = f"{type(exc).__name__}: {exc}"
            if code is ErrCode.TIMEOUT:
                message = "wall deadline reached; sandbox killed"
            raise _Failed(code, message) from exc

        def read(name: str) -> str:
            path = f"{self._workdir}/{STATUS_DIR}/{name}"
            return str(sandbox.files.read(path))

        exit_code = int(self._guard(Phase.DOWNLOAD, lambda: read("exit")).strip())
        state.exit_code = exit_code
        state.stdout = self._guard(Phase.DOWNLOAD, lambda: read("stdout"))
        state.stderr = self._guard(Phase.DOWNLOAD, lambda: read("stderr"))
        if exit_code != 0:
            state.err, state.message = ErrCode.CMD_NONZERO, f"exit code {exit_code}"

    def _gone(self, ref: str) -> bool:
        try:
            return not any(info.sandbox_id == ref for info in self._ours())
        except Exception:  # cannot tell: not gone, the original error stands
            return False

    def _why_gone(self, request: SandboxRequest) -> tuple[ErrCode, str]:
        if request.runId in self._canceled_runs:
            return ErrCode.CANCELED, "run canceled; sandbox killed"
        return ErrCode.LOST, "attempt lost: its sandbox is gone (killed or expired)"

    def _download(self, state: _Attempt) -> list[FileOut]:
        sandbox, patterns = state.sandbox, state.request.collect
        prefix = f"{self._workdir}/"
        entries = self._guard(Phase.DOWNLOAD, lambda: sandbox.files.list(self._workdir, depth=32))
        found: list[FileOut] = []
        for entry in entries:
            rel = entry.path.removeprefix(prefix)
            ours = rel == STATUS_DIR or rel.startswith(f"{STATUS_DIR}/")
            kind = getattr(entry.type, "value", entry.type)
            if kind == "file" and not ours and matches_any(rel, patterns):
                data = self._guard(Phase.DOWNLOAD, partial(sandbox.files.read, entry.path, "bytes"))
                found.append(file_out(rel, [bytes(data)], self._cap))
        return sorted(found, key=lambda f: f.path)

    def _result(self, state: _Attempt) -> SandboxResult:
        request = state.request
        return sandbox_result(
            request,
            provider=self.name,
            started=state.started,
            err=state.err or classify_exit(state.exit_code),
            exit_code=state.exit_code,
            stdout=Captured.of(state.stdout),
            stderr=Captured.of(state.stderr),
            message=state.message,
            sandbox_ref=state.ref or (state.sandbox.sandbox_id if state.sandbox else "e2b-none"),
            output_cap=self._cap,
            boot_ms=state.boot_ms,
            files_out=state.files_out,
            isolation="microvm",
            workspace_diff=state.diff,
        )

    # --- leftovers ---

    def _ours(self, **metadata: str) -> list[Any]:
        query = SandboxQuery(metadata={OWNER_KEY: OWNER_VALUE, **metadata})
        paginator = Sandbox.list(query=query, **self._conn.params())
        found: list[Any] = []
        while paginator.has_next:
            found.extend(paginator.next_items())
        return found

    def kill_leftovers(self, task_key: str) -> list[str]:
        """Kill the sandboxes earlier attempts of this task left (a crashed worker's)."""
        return self._kill_each(self._ours(taskKey=task_key))

    def sweep_orphans(self, is_live: Callable[[str], bool]) -> list[str]:
        """Kill every sandbox of ours whose run `is_live(runId)` says is gone or finished."""
        stale = [s for s in self._ours() if not is_live((s.metadata or {}).get("runId", ""))]
        return self._kill_each(stale)

    def _kill_each(self, infos: list[Any]) -> list[str]:
        killed = []
        for info in infos:
            if Sandbox.kill(info.sandbox_id, **self._conn.params()):
                killed.append(info.sandbox_id)
        return killed


@dataclass
class _Attempt:
    request: SandboxRequest
    started: float
    sandbox: Any = None
    boot_ms: int | None = None
    exit_code: int | None = None
    stdout: str = ""
    stderr: str = ""
    err: ErrCode | None = None
    message: str | None = None
    files_out: list[FileOut] = field(default_factory=list)
    ref: str | None = None
    diff: WorkspaceDiff | None = None


def _diff_of(before: bytes, after: bytes) -> WorkspaceDiff:
    try:
        changed = files_of(read_archive(after, WORK_TREE_CAPS))
    except ArchiveError as exc:
        raise FileTransferError(f"the work folder came back unreadable: {exc}") from exc
    return diff_files(files_of(read_snapshot(before).entries), changed)


def _identity(request: SandboxRequest) -> dict[str, str]:
    return {"runId": request.runId, "taskKey": request.taskKey, "attempt": str(request.attempt)}
