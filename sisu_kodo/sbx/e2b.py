"""The E2B provider: one E2B sandbox per attempt through the official `e2b` SDK.

The sandbox is tagged with the run, task and attempt so a recovered attempt finds and
kills what a crashed worker left, and `sweep_orphans` kills sandboxes whose run is over.
E2B exceptions are mapped in `classify_e2b` (order matters: several classes subclass
each other) and fall back to the shared taxonomy in `failures`.
"""

from __future__ import annotations

import contextlib
import time
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
from sisu_kodo.sbx.failures import classify_exception, classify_exit
from sisu_kodo.sbx.files import (
    ArtifactResolver,
    FileTransferError,
    file_in_bytes,
    file_out,
    matches_any,
    safe_relpath,
)
from sisu_kodo.sbx.port import ProviderHealth
from sisu_kodo.sbx.results import DEFAULT_OUTPUT_CAP_BYTES, Captured, sandbox_result

OWNER_KEY = "sisu.owner"
OWNER_VALUE = "sisu-kodo"
# The sandbox outlives the command by this much, so a crashed worker's sandbox still dies.
_LIFETIME_MARGIN_S = 60


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
    ) -> None:
        self._conn = connection
        self._template = template
        self._workdir = workdir.rstrip("/")
        self._cap = output_cap_bytes
        self._resolver = resolver

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

    # --- one attempt ---

    def run(self, request: SandboxRequest) -> SandboxResult:
        started = time.monotonic()
        state = _Attempt(request=request, started=started)
        try:
            self._guard(Phase.CREATE, lambda: self.kill_leftovers(request.taskKey))
            self._create(state)
            self._upload(state)
            self._command(state)
            if request.collect:
                state.files_out = self._download(state)
        except _Failed as failed:
            state.err, state.message = failed.code, str(failed)
        finally:
            if state.sandbox is not None:
                with contextlib.suppress(Exception):  # the sandbox's lifetime kills it anyway
                    state.sandbox.kill()
        return self._result(state)

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
            "runId": request.runId,
            "taskKey": request.taskKey,
            "attempt": str(request.attempt),
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

    def _upload(self, state: _Attempt) -> None:
        sandbox = state.sandbox
        for file in state.request.files:

            def write(f: Any = file) -> None:
                path = f"{self._workdir}/{safe_relpath(f.path)}"
                sandbox.files.write(path, file_in_bytes(f, self._resolver))

            self._guard(Phase.UPLOAD, write)

    def _command(self, state: _Attempt) -> None:
        sandbox, request = state.sandbox, state.request
        handle = self._guard(
            Phase.COMMAND,
            lambda: sandbox.commands.run(
                request.command,
                background=True,
                envs=request.env,
                cwd=self._workdir,
                timeout=request.timeoutMs / 1000,
            ),
        )
        try:
            done = handle.wait()
            state.exit_code, state.stdout, state.stderr = 0, done.stdout, done.stderr
        except CommandExitException as exc:
            state.exit_code, state.stdout, state.stderr = exc.exit_code, exc.stdout, exc.stderr
            state.err, state.message = ErrCode.CMD_NONZERO, f"exit code {exc.exit_code}"
        except Exception as exc:  # mapped below; a command past our deadline is killed first
            code = classify_e2b(exc, Phase.COMMAND)
            if code is ErrCode.TIMEOUT:
                # The SDK stops waiting but the process keeps running (e2b-dev/E2B#500).
                with contextlib.suppress(Exception):
                    sandbox.commands.kill(handle.pid)
            raise _Failed(code, f"{type(exc).__name__}: {exc}") from exc

    def _download(self, state: _Attempt) -> list[FileOut]:
        sandbox, patterns = state.sandbox, state.request.collect
        prefix = f"{self._workdir}/"
        entries = self._guard(Phase.DOWNLOAD, lambda: sandbox.files.list(self._workdir, depth=32))
        found: list[FileOut] = []
        for entry in entries:
            rel = entry.path.removeprefix(prefix)
            if getattr(entry.type, "value", entry.type) == "file" and matches_any(rel, patterns):
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
            sandbox_ref=state.sandbox.sandbox_id if state.sandbox else "e2b-none",
            output_cap=self._cap,
            boot_ms=state.boot_ms,
            files_out=state.files_out,
            isolation="microvm",
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
