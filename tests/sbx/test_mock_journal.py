"""The mock's execution journal: executions counted from inside the sandbox, a crash mid
execution answered LOST (never run again), a finished attempt re-collected as recorded."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

from sisu_kodo.contracts.sandbox import ErrCode, SandboxResult
from sisu_kodo.sbx.journal import ExecutionJournal
from sisu_kodo.sbx.mock import MockSandboxProvider
from tests.fixtures.processes import wait_for
from tests.sbx.conftest import MakeRequest

_WORKER = """
import sys
from pathlib import Path
from sisu_kodo.contracts.sandbox import SandboxRequest
from sisu_kodo.sbx.mock import MockSandboxProvider
provider = MockSandboxProvider(latency_ms=600_000, journal_dir=Path(sys.argv[1]))
provider.run(SandboxRequest.model_validate_json(sys.argv[2]))
"""


def _events(journal: ExecutionJournal) -> list[str]:
    return [entry["event"] for entry in journal.entries()]


def test_crash_mid_execution_is_lost_not_rerun(tmp_path: Path, make_request: MakeRequest) -> None:
    request = make_request("work", timeoutMs=600_000)
    journal = ExecutionJournal(tmp_path)
    worker = subprocess.Popen(
        [sys.executable, "-c", _WORKER, str(tmp_path), request.model_dump_json()]
    )
    try:
        wait_for(lambda: _events(journal) == ["started"], timeout=30, what="execution started")
    finally:
        worker.kill()
        worker.wait()
    recovering = MockSandboxProvider(journal_dir=tmp_path)
    result = recovering.wait(request, recovering.start(request))
    assert result.errCode is ErrCode.LOST and result.errCode.retryable
    assert _events(journal) == ["started"], "not executed a second time"


def test_finished_attempt_is_recollected_as_recorded(
    tmp_path: Path, make_request: MakeRequest
) -> None:
    request = make_request("work")
    first = MockSandboxProvider(journal_dir=tmp_path).run(request)
    again = MockSandboxProvider(journal_dir=tmp_path).run(request)
    assert first.errCode is ErrCode.NONE and again == first
    assert _events(ExecutionJournal(tmp_path)) == ["started", "finished"]


def test_cancel_stops_an_execution_in_flight(make_request: MakeRequest) -> None:
    provider = MockSandboxProvider(latency_ms=600_000)
    request = make_request("work", timeoutMs=600_000)
    results: list[SandboxResult] = []
    waiter = threading.Thread(target=lambda: results.append(provider.run(request)))
    waiter.start()
    canceled = wait_for(lambda: provider.cancel_run(request.runId), timeout=10, what="in flight")
    waiter.join(timeout=10)
    assert canceled == [results[0].sandboxRef]
    assert results[0].errCode is ErrCode.CANCELED and not ErrCode.CANCELED.retryable
