"""The Microsandbox provider: one local microVM per attempt through the `microsandbox` SDK 0.7.x.

MicroVMs need hardware virtualization (VT-x/AMD-V). A host without it (nested PVM,
most CI runners) still has /dev/kvm, but the guest kernel dies seconds after boot;
so `health()` and `run()` check the CPU flags first and answer BOOT_FAIL with the
reason at once, and every SDK call is bounded so a run never hangs.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable
from pathlib import Path
from typing import Any, TypeVar

from sisu_kodo.contracts.sandbox import ErrCode, FileOut, SandboxRequest, SandboxResult
from sisu_kodo.sbx.failures import classify_exception, classify_exit, no_output_result
from sisu_kodo.sbx.files import (
    ArtifactResolver,
    FileTransferError,
    file_in_bytes,
    file_out,
    safe_relpath,
)
from sisu_kodo.sbx.port import ProviderHealth
from sisu_kodo.sbx.results import DEFAULT_OUTPUT_CAP_BYTES, Captured, sandbox_result

T = TypeVar("T")
SANDBOX_WORKDIR = "/workspace"
_KILL_TIMEOUT_S = 5.0


def virtualization_problem(
    cpuinfo: Path = Path("/proc/cpuinfo"), kvm: Path = Path("/dev/kvm")
) -> str | None:
    """Why microVMs cannot boot on this host, or None when the prerequisites are there."""
    if not kvm.exists():
        return f"{kvm} is missing (KVM not available)"
    try:
        flags = {
            flag
            for line in cpuinfo.read_text().splitlines()
            if line.startswith("flags")
            for flag in line.partition(":")[2].split()
        }
    except OSError as exc:
        return f"cannot read {cpuinfo}: {exc}"
    if not flags & {"vmx", "svm"}:
        return "no hardware virtualization: the CPU has no vmx (Intel) or svm (AMD) flag"
    return None


def classify_microsandbox(exc: BaseException) -> ErrCode:
    """The errCode of a Microsandbox SDK exception (0.7.x raises the bare base class for
    both a failed boot and a failed image pull, so those are told apart by message)."""
    from microsandbox import errors

    if isinstance(exc, errors.ExecTimeoutError | TimeoutError):
        return ErrCode.TIMEOUT
    if isinstance(exc, errors.ImagePullFailedError | errors.TlsError | errors.CloudHttpError):
        return ErrCode.NET_FAIL
    if isinstance(exc, errors.FilesystemError | errors.PathNotFoundError):
        return ErrCode.UPLOAD_FAIL
    if isinstance(exc, errors.SandboxNotRunningError | errors.SandboxNotFoundError):
        return ErrCode.NET_FAIL
    if isinstance(exc, errors.MicrosandboxError):
        text = str(exc).lower()
        if "registry error" in text or "error sending request" in text:
            return ErrCode.NET_FAIL
        return ErrCode.BOOT_FAIL
    return classify_exception(exc)


class MicrosandboxProvider:
    """Runs each attempt in a fresh ephemeral microVM; refuses fast where none can boot."""

    name = "microsandbox"

    def __init__(
        self,
        *,
        image: str = "python:3.12-slim",
        boot_timeout_s: float = 30.0,
        output_cap_bytes: int = DEFAULT_OUTPUT_CAP_BYTES,
        resolver: ArtifactResolver | None = None,
    ) -> None:
        self._image = image
        self._boot_timeout_s = boot_timeout_s
        self._cap = output_cap_bytes
        self._resolver = resolver
        self._lock = threading.Lock()
        self._pending: dict[str, str] = {}  # ref -> runId, started and not yet waited for
        self._in_flight: dict[str, tuple[str, asyncio.AbstractEventLoop, Any]] = {}
        self._canceled: set[str] = set()

    def health(self) -> ProviderHealth:
        problem = virtualization_problem()
        try:
            import microsandbox  # noqa: F401
        except ImportError:
            problem = problem or "the `microsandbox` package is not installed (extra: microsandbox)"
        if problem:
            return ProviderHealth(provider=self.name, ok=False, detail=problem, isolation="microvm")
        return ProviderHealth(
            provider=self.name,
            ok=True,
            detail="VT-x/AMD-V and /dev/kvm present",
            isolation="microvm",
        )

    def start(self, request: SandboxRequest) -> str:
        """Nothing boots yet: the microVM lives only as long as the `wait` driving it, so
        an attempt can be collected only by the worker that started it."""
        ref = _ref(request)
        with self._lock:
            self._pending[ref] = request.runId
        return ref

    def run(self, request: SandboxRequest) -> SandboxResult:
        return self.wait(request, self.start(request))

    def wait(self, request: SandboxRequest, ref: str) -> SandboxResult:
        started = time.monotonic()
        with self._lock:
            known = self._pending.pop(ref, None) is not None
            canceled = ref in self._canceled
        if not known:
            message = "attempt lost: microVMs cannot be reattached after their worker died"
            return self._failed(request, started, ErrCode.LOST, message)
        if canceled:
            return self._failed(request, started, ErrCode.CANCELED, "run canceled")
        if request.workspaceSha256 is not None:  # fail closed: never run without its files
            message = "microsandbox cannot place a workspace yet; run it on local or e2b"
            return self._failed(request, started, ErrCode.UPLOAD_FAIL, message)
        problem = virtualization_problem()
        if problem is not None:
            return self._failed(request, started, ErrCode.BOOT_FAIL, problem)
        budget = self._boot_timeout_s + request.timeoutMs / 1000 + _KILL_TIMEOUT_S
        try:
            return asyncio.run(_bounded(self._run(request, started), budget))
        except FileTransferError as exc:
            return self._failed(request, started, ErrCode.UPLOAD_FAIL, str(exc))
        except Exception as exc:  # every SDK failure becomes an errCode
            code = ErrCode.CANCELED if ref in self._canceled else classify_microsandbox(exc)
            return self._failed(request, started, code, f"{type(exc).__name__}: {exc}")
        finally:
            with self._lock:
                self._canceled.discard(ref)

    def cancel_run(self, run_id: str) -> list[str]:
        """Stop the run's microVMs (from another thread than the one driving them)."""
        with self._lock:
            pending = [ref for ref, run in self._pending.items() if run == run_id]
            running = [(ref, v) for ref, v in self._in_flight.items() if v[0] == run_id]
            self._canceled.update(pending + [ref for ref, _ in running])
        for _, (_, loop, sandbox) in running:
            asyncio.run_coroutine_threadsafe(sandbox.kill(), loop)
        return pending + [ref for ref, _ in running]

    async def _run(self, request: SandboxRequest, started: float) -> SandboxResult:
        from microsandbox import Sandbox

        name = _ref(request)
        boot = time.monotonic()
        sandbox = await _bounded(
            Sandbox.create(
                name,
                image=request.image or self._image,
                memory=request.memoryMb,
                cpus=max(1, int(request.cpu or 1)),
                workdir=SANDBOX_WORKDIR,
                env=request.env,
                labels={"runId": request.runId, "taskKey": request.taskKey},
                max_duration=request.timeoutMs / 1000 + self._boot_timeout_s,
                ephemeral=True,
                replace=True,
            ),
            self._boot_timeout_s,
        )
        boot_ms = int((time.monotonic() - boot) * 1000)
        with self._lock:
            self._in_flight[name] = (request.runId, asyncio.get_running_loop(), sandbox)
        try:
            for file in request.files:
                path = f"{SANDBOX_WORKDIR}/{safe_relpath(file.path)}"
                await sandbox.fs.write(path, file_in_bytes(file, self._resolver))
            out = await sandbox.shell(request.command, timeout=request.timeoutMs / 1000)
            files = [await self._collect(sandbox, p) for p in request.collect]
        finally:
            with self._lock:
                self._in_flight.pop(name, None)
            await _bounded(sandbox.kill(), _KILL_TIMEOUT_S)
        return self._result(request, started, out, boot_ms, [f for f in files if f])

    async def _collect(self, sandbox: Any, pattern: str) -> FileOut | None:
        # Globs are not expanded in the guest; a collect entry here is a literal path.
        path = f"{SANDBOX_WORKDIR}/{safe_relpath(pattern)}"
        data = await sandbox.fs.read(path)
        return file_out(pattern, [bytes(data)], self._cap)

    def _result(
        self,
        request: SandboxRequest,
        started: float,
        out: Any,
        boot_ms: int,
        files: list[FileOut],
    ) -> SandboxResult:
        code = classify_exit(out.exit_code)
        return sandbox_result(
            request,
            provider=self.name,
            started=started,
            err=code,
            exit_code=out.exit_code,
            stdout=Captured.of(out.stdout_text),
            stderr=Captured.of(out.stderr_text),
            message=None if code is ErrCode.NONE else f"exit code {out.exit_code}",
            sandbox_ref=_ref(request),
            output_cap=self._cap,
            boot_ms=boot_ms,
            files_out=files,
            isolation="microvm",
        )

    def _failed(
        self, request: SandboxRequest, started: float, code: ErrCode, message: str
    ) -> SandboxResult:
        return no_output_result(
            request,
            self.name,
            code,
            message,
            started,
            ref="microsandbox-none",
            isolation="microvm",
            output_cap=self._cap,
        )


def _ref(request: SandboxRequest) -> str:
    return f"sisu-{request.taskKey[:24]}-a{request.attempt}"


async def _bounded(awaitable: Awaitable[T], seconds: float) -> T:
    return await asyncio.wait_for(awaitable, seconds)
