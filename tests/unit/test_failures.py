from __future__ import annotations

import time

import pytest

from sisu_kodo.contracts.sandbox import ErrCode, SandboxMetrics, SandboxRequest, SandboxResult
from sisu_kodo.sbx.failures import classify_exception, classify_exit, failure_result, normalise


class RateLimitError(Exception):
    pass


class AuthenticationException(Exception):
    pass


@pytest.mark.parametrize(
    ("exc", "code"),
    [
        (TimeoutError("deadline"), ErrCode.TIMEOUT),
        (MemoryError(), ErrCode.OOM),
        (ConnectionRefusedError(), ErrCode.NET_FAIL),
        (RateLimitError(), ErrCode.RATE_LIMIT),
        (AuthenticationException(), ErrCode.AUTH),
        (PermissionError(), ErrCode.AUTH),
        (RuntimeError("who knows"), ErrCode.BOOT_FAIL),
    ],
)
def test_exceptions_map_to_codes(exc: BaseException, code: ErrCode) -> None:
    assert classify_exception(exc) is code


def test_exit_statuses_map_to_codes() -> None:
    assert classify_exit(0) is ErrCode.NONE
    assert classify_exit(2) is ErrCode.CMD_NONZERO
    assert classify_exit(None) is ErrCode.BOOT_FAIL
    assert classify_exit(137, oom=True) is ErrCode.OOM
    assert classify_exit(0, timed_out=True) is ErrCode.TIMEOUT


def _result(exit_code: int | None, code: ErrCode) -> SandboxResult:
    return SandboxResult(
        taskKey="k",
        attempt=1,
        provider="p",
        exitCode=exit_code,
        errCode=code,
        sandboxRef="s",
        metrics=SandboxMetrics(wallMs=1),
    )


def test_a_claimed_success_with_a_failing_exit_is_never_success() -> None:
    assert normalise(_result(3, ErrCode.NONE)).errCode is ErrCode.CMD_NONZERO
    assert normalise(_result(None, ErrCode.NONE)).errCode is ErrCode.BOOT_FAIL
    assert normalise(_result(0, ErrCode.NONE)).errCode is ErrCode.NONE
    assert normalise(_result(None, ErrCode.TIMEOUT)).errCode is ErrCode.TIMEOUT


def test_failure_result_of_a_raising_provider() -> None:
    request = SandboxRequest(runId="r", taskKey="k", attempt=2, command="x", timeoutMs=10)
    result = failure_result(request, "e2b", ConnectionResetError("peer"), time.monotonic())
    assert (result.errCode, result.exitCode, result.attempt) == (ErrCode.NET_FAIL, None, 2)
    assert "ConnectionResetError: peer" in result.stderr
