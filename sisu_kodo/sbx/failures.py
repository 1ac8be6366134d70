"""The failure taxonomy: the one place provider outcomes become an `errCode`.

Rules, in order:
1. A result the provider already classified keeps its code, except that a claimed
   success with a non-zero exit becomes CMD_NONZERO: a failure is never read as success.
2. An exception escaping a provider is mapped by its type (timeouts, memory, network,
   authentication, rate limits); anything unrecognised is BOOT_FAIL (the sandbox did
   not deliver a result), which is retried like any infrastructure failure.
Providers with vendor exceptions (E2B, Microsandbox) map those first and fall back here.
"""

from __future__ import annotations

from sisu_kodo.contracts.sandbox import ErrCode, SandboxRequest, SandboxResult
from sisu_kodo.sbx.results import DEFAULT_OUTPUT_CAP_BYTES, Captured, sandbox_result


def classify_exit(exit_code: int | None, *, timed_out: bool = False, oom: bool = False) -> ErrCode:
    if timed_out:
        return ErrCode.TIMEOUT
    if oom:
        return ErrCode.OOM
    if exit_code is None:
        return ErrCode.BOOT_FAIL
    return ErrCode.NONE if exit_code == 0 else ErrCode.CMD_NONZERO


def classify_exception(exc: BaseException) -> ErrCode:
    name = type(exc).__name__.lower()
    if isinstance(exc, TimeoutError) or "timeout" in name:
        return ErrCode.TIMEOUT
    if isinstance(exc, MemoryError):
        return ErrCode.OOM
    if "ratelimit" in name or "toomanyrequests" in name:
        return ErrCode.RATE_LIMIT
    if "auth" in name or isinstance(exc, PermissionError):
        return ErrCode.AUTH
    if isinstance(exc, ConnectionError) or "network" in name or "connect" in name:
        return ErrCode.NET_FAIL
    return ErrCode.BOOT_FAIL


def normalise(result: SandboxResult) -> SandboxResult:
    if result.errCode is ErrCode.NONE and result.exitCode != 0:
        return result.model_copy(
            update={
                "errCode": classify_exit(result.exitCode),
                "errMessage": result.errMessage or f"exit code {result.exitCode}",
            }
        )
    return result


def failure_result(
    request: SandboxRequest,
    provider: str,
    exc: BaseException,
    started: float,
    *,
    output_cap: int = DEFAULT_OUTPUT_CAP_BYTES,
) -> SandboxResult:
    """The result of an attempt whose provider raised instead of returning."""
    message = f"{type(exc).__name__}: {exc}"
    return no_output_result(
        request,
        provider,
        classify_exception(exc),
        message,
        started,
        ref=f"{provider}-error",
        output_cap=output_cap,
    )


def no_output_result(
    request: SandboxRequest,
    provider: str,
    code: ErrCode,
    message: str,
    started: float,
    *,
    ref: str,
    isolation: str | None = None,
    output_cap: int = DEFAULT_OUTPUT_CAP_BYTES,
) -> SandboxResult:
    """The result of an attempt that produced nothing to collect: no exit code, the
    reason as its stderr and message."""
    return sandbox_result(
        request,
        provider=provider,
        started=started,
        err=code,
        message=message,
        stderr=Captured.of(message + "\n"),
        sandbox_ref=ref,
        isolation=isolation,
        output_cap=output_cap,
    )
