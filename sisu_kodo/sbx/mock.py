"""The mock provider: deterministic output, configurable latency, injected faults."""

from __future__ import annotations

import time

from sisu_kodo.contracts.sandbox import ErrCode, SandboxRequest, SandboxResult
from sisu_kodo.sbx.faults import FAULT_LABEL, LATENCY_LABEL, OUTPUT_LABEL, Fault
from sisu_kodo.sbx.port import ProviderHealth
from sisu_kodo.sbx.results import DEFAULT_OUTPUT_CAP_BYTES, Captured, sandbox_result

FLAKY_FAILING_ATTEMPTS = 2


class MockSandboxProvider:
    name = "mock"

    def __init__(
        self, *, latency_ms: int = 0, output_cap_bytes: int = DEFAULT_OUTPUT_CAP_BYTES
    ) -> None:
        self._latency_ms = latency_ms
        self._cap = output_cap_bytes

    def health(self) -> ProviderHealth:
        return ProviderHealth(provider=self.name, ok=True, detail="deterministic mock")

    def run(self, request: SandboxRequest) -> SandboxResult:
        started = time.monotonic()
        latency_ms = int(request.labels.get(LATENCY_LABEL, self._latency_ms))
        fault = request.labels.get(FAULT_LABEL)
        ref = f"mock-{request.taskKey[:12]}-a{request.attempt}"

        def result(
            err: ErrCode, exit_code: int | None, stdout: str = "", stderr: str = ""
        ) -> SandboxResult:
            return sandbox_result(
                request,
                provider=self.name,
                started=started,
                err=err,
                exit_code=exit_code,
                stdout=Captured.of(stdout),
                stderr=Captured.of(stderr),
                message=stderr.strip() or None,
                sandbox_ref=ref,
                isolation="mock",
                output_cap=self._cap,
                boot_ms=0,
                cpu_ms=0,
            )

        if fault == Fault.BOOT_FAIL or (
            fault == Fault.FLAKY_BOOT and request.attempt <= FLAKY_FAILING_ATTEMPTS
        ):
            return result(ErrCode.BOOT_FAIL, None, stderr="mock: sandbox failed to boot\n")
        time.sleep(min(latency_ms, request.timeoutMs) / 1000)
        if fault == Fault.TIMEOUT:
            return result(
                ErrCode.TIMEOUT, None, stderr=f"mock: wall limit of {request.timeoutMs} ms hit\n"
            )
        if fault == Fault.CMD_NONZERO or (fault == Fault.FAIL_ONCE and request.attempt == 1):
            return result(
                ErrCode.CMD_NONZERO, 1, stderr=f"mock: `{request.command}` exited with 1\n"
            )
        padding = "x" * int(request.labels.get(OUTPUT_LABEL, 0))
        return result(ErrCode.NONE, 0, stdout=f"OK: {request.command}\n{padding}")
