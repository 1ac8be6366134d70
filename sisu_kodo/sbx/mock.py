"""The mock provider: deterministic output, configurable latency, injected faults.

It extracts no workspace: for a request with one it records that it would (a line of its
stdout naming the snapshot) and reports an empty diff.

It executes inside the worker process (in `wait`), so a crash loses the execution;
with an execution journal it answers LOST for an attempt that started and never
finished, and returns a finished attempt's recorded result, never running it twice.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

from sisu_kodo.contracts.sandbox import ErrCode, SandboxRequest, SandboxResult
from sisu_kodo.contracts.workspaces import WorkspaceDiff
from sisu_kodo.sbx.faults import FAULT_LABEL, LATENCY_LABEL, OUTPUT_LABEL, Fault
from sisu_kodo.sbx.journal import ExecutionJournal
from sisu_kodo.sbx.port import ProviderHealth
from sisu_kodo.sbx.results import DEFAULT_OUTPUT_CAP_BYTES, Captured, sandbox_result

FLAKY_FAILING_ATTEMPTS = 2


class MockSandboxProvider:
    name = "mock"

    def __init__(
        self,
        *,
        latency_ms: int = 0,
        journal_dir: Path | None = None,
        output_cap_bytes: int = DEFAULT_OUTPUT_CAP_BYTES,
    ) -> None:
        self._latency_ms = latency_ms
        self._cap = output_cap_bytes
        self._journal = ExecutionJournal(journal_dir) if journal_dir else None
        self._lock = threading.Lock()
        # ref -> (runId, set when the run is canceled) of executions in flight here
        self._in_flight: dict[str, tuple[str, threading.Event]] = {}

    def health(self) -> ProviderHealth:
        return ProviderHealth(provider=self.name, ok=True, detail="deterministic mock")

    def start(self, request: SandboxRequest) -> str:
        return f"mock-{request.taskKey[:12]}-a{request.attempt}"

    def run(self, request: SandboxRequest) -> SandboxResult:
        return self.wait(request, self.start(request))

    def wait(self, request: SandboxRequest, ref: str) -> SandboxResult:
        started = time.monotonic()
        if self._journal is not None:
            began, recorded = self._journal.state(ref)
            if recorded is not None:
                return recorded
            if began:
                message = "mock: attempt started by a worker that died; not run again"
                return self._result(request, ref, started, ErrCode.LOST, None, stderr=message)
            self._journal.started(request, ref)
        canceled = threading.Event()
        with self._lock:
            self._in_flight[ref] = (request.runId, canceled)
        try:
            result = self._execute(request, ref, started, canceled)
        finally:
            with self._lock:
                self._in_flight.pop(ref, None)
        if self._journal is not None:
            self._journal.finished(request, ref, result)
        return result

    def cancel_run(self, run_id: str) -> list[str]:
        with self._lock:
            hit = [(ref, event) for ref, (run, event) in self._in_flight.items() if run == run_id]
        for _, event in hit:
            event.set()
        return [ref for ref, _ in hit]

    def _execute(
        self, request: SandboxRequest, ref: str, started: float, canceled: threading.Event
    ) -> SandboxResult:
        latency_ms = int(request.labels.get(LATENCY_LABEL, self._latency_ms))
        fault = request.labels.get(FAULT_LABEL)
        if fault == Fault.BOOT_FAIL or (
            fault == Fault.FLAKY_BOOT and request.attempt <= FLAKY_FAILING_ATTEMPTS
        ):
            return self._result(
                request, ref, started, ErrCode.BOOT_FAIL, None, "mock: sandbox failed to boot"
            )
        if canceled.wait(min(latency_ms, request.timeoutMs) / 1000):
            return self._result(request, ref, started, ErrCode.CANCELED, None, "mock: run canceled")
        if fault == Fault.TIMEOUT:
            message = f"mock: wall limit of {request.timeoutMs} ms hit"
            return self._result(request, ref, started, ErrCode.TIMEOUT, None, message)
        if fault == Fault.CMD_NONZERO or (fault == Fault.FAIL_ONCE and request.attempt == 1):
            message = f"mock: `{request.command}` exited with 1"
            return self._result(request, ref, started, ErrCode.CMD_NONZERO, 1, message)
        padding = "x" * int(request.labels.get(OUTPUT_LABEL, 0))
        stdout = f"OK: {request.command}\n{padding}"
        if request.workspaceSha256 is None:
            return self._result(request, ref, started, ErrCode.NONE, 0, stdout=stdout)
        stdout += f"mock: would extract workspace {request.workspaceSha256} first\n"
        result = self._result(request, ref, started, ErrCode.NONE, 0, stdout=stdout)
        return result.model_copy(update={"workspaceDiff": WorkspaceDiff()})

    def _result(
        self,
        request: SandboxRequest,
        ref: str,
        started: float,
        err: ErrCode,
        exit_code: int | None,
        stderr: str = "",
        stdout: str = "",
    ) -> SandboxResult:
        return sandbox_result(
            request,
            provider=self.name,
            started=started,
            err=err,
            exit_code=exit_code,
            stdout=Captured.of(stdout),
            stderr=Captured.of(stderr + "\n" if stderr else ""),
            message=stderr or None,
            sandbox_ref=ref,
            isolation="mock",
            output_cap=self._cap,
            boot_ms=0,
            cpu_ms=0,
        )
