from __future__ import annotations

from sisu_kodo.contracts.sandbox import ErrCode, SandboxRequest
from sisu_kodo.sbx.faults import FAULT_LABEL
from sisu_kodo.sbx.mock import MockSandboxProvider


def _request(attempt: int = 1, /, **labels: str) -> SandboxRequest:
    return SandboxRequest(
        runId="run_x",
        taskKey="k" * 64,
        attempt=attempt,
        command="echo hi",
        timeoutMs=1000,
        labels=labels,
    )


def test_success_is_deterministic() -> None:
    result = MockSandboxProvider().run(_request())
    assert result.errCode is ErrCode.NONE and result.exitCode == 0
    assert result.stdout == "OK: echo hi\n"
    assert result.sandboxRef == "mock-kkkkkkkkkkkk-a1"
    assert result.metrics.wallMs >= 0


def test_injected_faults() -> None:
    provider = MockSandboxProvider()
    nonzero = provider.run(_request(**{FAULT_LABEL: "cmd_nonzero"}))
    assert (nonzero.errCode, nonzero.exitCode) == (ErrCode.CMD_NONZERO, 1)
    assert "exited with 1" in nonzero.stderr
    assert provider.run(_request(**{FAULT_LABEL: "boot_fail"})).errCode is ErrCode.BOOT_FAIL
    assert provider.run(_request(**{FAULT_LABEL: "timeout"})).errCode is ErrCode.TIMEOUT
    flaky = [provider.run(_request(n, **{FAULT_LABEL: "flaky_boot"})).errCode for n in (1, 2, 3)]
    assert flaky == [ErrCode.BOOT_FAIL, ErrCode.BOOT_FAIL, ErrCode.NONE]


def test_retryable_codes() -> None:
    assert ErrCode.BOOT_FAIL.retryable and ErrCode.TIMEOUT.retryable
    assert not ErrCode.CMD_NONZERO.retryable and not ErrCode.NONE.retryable
    assert not ErrCode.AUTH.retryable and not ErrCode.OOM.retryable
