"""The local provider's attempt lifecycle across processes: cancel kills in-flight trees,
a sandbox outlives the worker that started it and is collected once by another, and an
attempt whose supervisor died comes back LOST, never run again."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from functools import partial
from pathlib import Path

import pytest

from sisu_kodo.config import IsolationChoice
from sisu_kodo.contracts.sandbox import ErrCode, SandboxRequest
from sisu_kodo.sbx.attempts import AttemptDir, supervisor_pid
from sisu_kodo.sbx.local import LocalSandboxProvider, sandbox_ref
from tests.fixtures.processes import wait_for
from tests.sbx.conftest import MakeRequest, commands_running, wait_commands_gone

# A worker-like process: starts one attempt, reports its ref, then blocks until killed.
_WORKER = """
import sys
from pathlib import Path
from sisu_kodo.contracts.sandbox import SandboxRequest
from sisu_kodo.config import IsolationChoice
from sisu_kodo.sbx.local import LocalSandboxProvider, sandbox_ref
provider = LocalSandboxProvider(work_root=Path(sys.argv[1]), isolation=IsolationChoice(sys.argv[2]))
print(provider.start(SandboxRequest.model_validate_json(sys.argv[3])), flush=True)
sys.stdin.read()
"""


def _marker(tag: str) -> str:
    """A `sleep` argument unique to this test run, findable in /proc."""
    return f"{tag}.{os.getpid()}{time.monotonic_ns() % 100_000}"


def test_cancel_kills_in_flight_trees_within_seconds(
    local: LocalSandboxProvider, make_request: MakeRequest
) -> None:
    marker, other_marker = _marker("60"), _marker("61")
    markers = [f"{marker}{n}" for n in range(3)]
    requests = [
        make_request(f"sleep {m} & sleep {m}", taskKey=f"t{m}", runId="run-c") for m in markers
    ]
    other = make_request(f"sleep {other_marker}", runId="run-other")
    refs = [local.start(r) for r in requests]
    other_ref = local.start(other)
    for m in markers:
        wait_for(partial(commands_running, f"sleep {m}"), timeout=20, what=f"task {m}")
    canceled_at = time.monotonic()
    assert sorted(local.cancel_run("run-c")) == sorted(refs)
    wait_commands_gone(f"sleep {marker}")
    assert time.monotonic() - canceled_at < 5
    results = [local.wait(r, ref) for r, ref in zip(requests, refs, strict=True)]
    assert {r.errCode for r in results} == {ErrCode.CANCELED}
    assert not ErrCode.CANCELED.retryable
    assert commands_running(f"sleep {other_marker}"), "another run's task is untouched"
    assert local.cancel_run("run-other") == [other_ref]
    assert local.wait(other, other_ref).errCode is ErrCode.CANCELED


def _start_in_a_worker(
    work_root: Path, isolation: IsolationChoice, request: SandboxRequest
) -> subprocess.Popen[str]:
    worker = subprocess.Popen(
        [sys.executable, "-c", _WORKER, str(work_root), isolation.value, request.model_dump_json()],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert worker.stdout is not None
    worker.stdout.readline()
    return worker


@pytest.mark.parametrize("isolation", [IsolationChoice.NAMESPACES, IsolationChoice.PROCESS])
def test_sandbox_outlives_a_killed_worker_and_runs_once(
    work_root: Path, make_request: MakeRequest, isolation: IsolationChoice
) -> None:
    """Counting executions: with namespaces the command appends to a file in its own
    work folder (the only place it can write; a second run in that folder would add a
    line); with process isolation it appends to a host file outside every attempt."""
    marker = _marker("2")
    host_counter = work_root / "executions"
    host_counter.mkdir(mode=0o777)
    host_counter.chmod(0o777)  # the sandbox uid writes here
    counter = "count.txt" if isolation is IsolationChoice.NAMESPACES else host_counter / "n"
    request = make_request(
        f"echo run >> {counter}; sleep {marker}; echo done; cat {counter}", collect=["*.txt"]
    )
    worker = _start_in_a_worker(work_root, isolation, request)
    attempt = AttemptDir(work_root / sandbox_ref(request))
    first_supervisor = wait_for(lambda: supervisor_pid(attempt), timeout=10, what="supervisor")
    worker.kill()
    worker.wait()
    assert commands_running(f"sleep {marker}"), "the sandbox outlived its worker"
    recovering = LocalSandboxProvider(work_root=work_root, isolation=isolation)
    ref = recovering.start(request)  # idempotent: finds the attempt, starts nothing
    assert supervisor_pid(attempt) == first_supervisor
    result = recovering.wait(request, ref)
    assert result.errCode is ErrCode.NONE, result.stderr
    assert result.stdout == "done\nrun\n", "executed exactly once"
    assert not attempt.root.exists(), "the folder goes once collected"


def test_attempt_whose_supervisor_died_is_lost(
    local: LocalSandboxProvider, make_request: MakeRequest
) -> None:
    marker = _marker("30")
    request = make_request(f"sleep {marker}")
    ref = local.start(request)
    pid = wait_for(lambda: supervisor_pid(AttemptDir(local._work_root / ref)), timeout=10)
    wait_for(lambda: commands_running(f"sleep {marker}"), timeout=10, what="the command")
    os.kill(pid, signal.SIGKILL)
    result = local.wait(request, ref)
    assert result.errCode is ErrCode.LOST and result.errCode.retryable
    assert "supervisor died" in (result.errMessage or "")
    wait_commands_gone(f"sleep {marker}")
    again = local.wait(request, ref)
    assert again.errCode is ErrCode.LOST, "nothing left to collect, and nothing re-run"


def test_deadline_is_enforced_without_a_worker(work_root: Path, make_request: MakeRequest) -> None:
    marker = _marker("40")
    request = make_request(f"sleep {marker}", timeoutMs=700)
    worker = _start_in_a_worker(work_root, IsolationChoice.NAMESPACES, request)
    worker.kill()
    worker.wait()
    attempt = AttemptDir(work_root / sandbox_ref(request))
    wait_for(attempt.status.exists, timeout=10, what="the supervisor's status")
    wait_commands_gone(f"sleep {marker}")
    provider = LocalSandboxProvider(work_root=work_root)
    result = provider.wait(request, provider.start(request))
    assert result.errCode is ErrCode.TIMEOUT
    assert 700 <= result.metrics.wallMs < 5000
