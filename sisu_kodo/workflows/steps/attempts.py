"""One task's sandbox attempts: claim the next from the ledger, start it and record it as
started, wait for it, record its outcome and artifacts."""

from __future__ import annotations

import base64
import time
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from dbos import DBOS

from sisu_kodo.canonical import canonical_json
from sisu_kodo.contracts.artifacts import artifact_uri
from sisu_kodo.contracts.runs import StepId
from sisu_kodo.contracts.sandbox import ErrCode, SandboxRequest, SandboxResult
from sisu_kodo.db import artifacts, sandbox_attempts, sandbox_runs, task_notices
from sisu_kodo.db.engine import reconnecting
from sisu_kodo.errors import AppError
from sisu_kodo.sbx.failures import failure_result, normalise
from sisu_kodo.workflows import runtime
from sisu_kodo.workflows.payloads import TaskOutcome, TaskRun


class RetryableSandboxFailure(AppError):
    """Raised inside the task step so DBOS retries an infrastructure failure."""


@dataclass(frozen=True)
class _Claim:
    """What the ledger says a task step does next: run attempt `attempt` (start it, or
    re-attach to `sandbox_ref` when it already started), or nothing (`outcome`)."""

    attempt: int
    sandbox_ref: str | None = None
    outcome: TaskOutcome | None = None


def run_sandbox_task(run_id: str, task: TaskRun) -> TaskOutcome:
    """Run one task through the sandbox port, retrying infrastructure failures.

    Each attempt is recorded as started (`sbx_attempts`) before its command is waited
    for, and records its outcome (its `sbx_runs` row and its artifacts) before the step
    returns; a receipt for a succeeded task is committed later, exactly once, by the
    parent (`record_receipts`).
    """
    settings = runtime.current().settings
    return DBOS.run_step(
        {
            "name": "ExecuteTaskST",
            "retries_allowed": True,
            "max_attempts": settings.queues.task_max_attempts,
            "interval_seconds": settings.queues.task_retry_interval_seconds,
            "backoff_rate": 2.0,
        },
        _run_sandbox_attempt,
        run_id,
        task,
    )


def _run_sandbox_attempt(run_id: str, task: TaskRun) -> TaskOutcome:
    """One try of the step: the ledger, not DBOS's retry counter (which starts again at 0
    after a crash), says which attempt this is and whether it already started."""
    rt = runtime.current()
    spec = task.spec
    max_attempts = rt.settings.queues.task_max_attempts
    with rt.task_steps.running(run_id, spec.taskKey):
        claim = _claim_reconnecting(rt.attempts, run_id, task, max_attempts)
        if claim.outcome is not None:
            return claim.outcome
        request = SandboxRequest(
            runId=run_id,
            taskKey=spec.taskKey,
            attempt=claim.attempt,
            command=spec.command,
            env=spec.env,
            timeoutMs=spec.timeoutMs,
            labels=spec.labels,
            workspaceSha256=task.workspace_sha256,
        )
        if claim.sandbox_ref is not None:
            _adopt_reconnecting(rt.attempts, request)
        started = claim.sandbox_ref or _start(rt, request, task.attempt_offset)
        if isinstance(started, SandboxResult):  # the provider could not start it
            code = record_outcome(rt.attempts, request, started, task.attempt_offset)
        else:
            code = collect_attempt(rt, request, started, attempt_offset=task.attempt_offset)
    if code.retryable and claim.attempt - task.attempt_offset < max_attempts and _tries_left():
        raise RetryableSandboxFailure(
            f"task {spec.name} attempt {request.attempt}: {code.value}",
            {"taskKey": spec.taskKey, "errCode": code.value},
        )
    return TaskOutcome(task_key=spec.taskKey, attempt=request.attempt, err_code=code)


def _tries_left() -> bool:
    """Whether DBOS will call the step again if it raises. It always will while the
    ledger has attempts left (each try uses a new number, but a first try after a crash
    may re-attach to one); this only guards against a failed step instead of a result."""
    status = DBOS.step_status
    if status is None or status.max_attempts is None:
        return False
    return (status.current_attempt or 0) + 1 < status.max_attempts


@reconnecting
def _claim_reconnecting(engine: sa.Engine, run_id: str, task: TaskRun, max_attempts: int) -> _Claim:
    with engine.begin() as conn:
        return _claim(conn, run_id, task, max_attempts)


def _claim(conn: sa.Connection, run_id: str, task: TaskRun, max_attempts: int) -> _Claim:
    key, offset = task.spec.taskKey, task.attempt_offset
    ledger = sandbox_attempts.task_ledger(
        conn, run_id=run_id, step_id=StepId.EXECUTE, task_key=key, after=offset
    )
    if ledger.pending_attempt is not None:  # started by a try (of a worker) that died
        return _Claim(ledger.pending_attempt, sandbox_ref=ledger.pending_ref)
    latest = ledger.latest_attempt
    if latest is not None and latest > offset:
        assert ledger.latest_err_code is not None and ledger.latest_offset is not None
        code = ErrCode(ledger.latest_err_code)
        if not code.retryable or latest - ledger.latest_offset >= max_attempts:
            # Recorded before a crash hid it from DBOS: never run a finished task again.
            return _Claim(latest, outcome=TaskOutcome(task_key=key, attempt=latest, err_code=code))
    last = max(offset, ledger.last_attempt)
    if ledger.run_status.terminal:  # it ended: start nothing
        canceled = TaskOutcome(task_key=key, attempt=last, err_code=ErrCode.CANCELED)
        return _Claim(last, outcome=canceled)
    return _Claim(last + 1)


def _start(
    rt: runtime.Runtime, request: SandboxRequest, attempt_offset: int
) -> str | SandboxResult:
    """Start the attempt and record it as started: its ref, or the failure as its result."""
    began = time.monotonic()
    try:
        ref = rt.sandbox.start(request)
    except Exception as exc:  # a provider bug or outage must become an errCode, never success
        cap = rt.settings.sandboxes.artifact_max_bytes
        return failure_result(request, rt.sandbox.name, exc, began, output_cap=cap)
    _record_started_reconnecting(rt.attempts, request, ref, rt.sandbox.name, attempt_offset)
    return ref


@reconnecting
def _record_started_reconnecting(
    engine: sa.Engine, request: SandboxRequest, ref: str, provider: str, attempt_offset: int
) -> None:
    with engine.begin() as conn:
        _record_started(conn, request, ref, provider, attempt_offset, DBOS.executor_id)


def _record_started(
    conn: sa.Connection,
    request: SandboxRequest,
    ref: str,
    provider: str,
    attempt_offset: int,
    executor_id: str,
    *,
    request_json: dict[str, Any] | None = None,
    finished: bool = False,
) -> None:
    sandbox_attempts.record_started(
        conn,
        run_id=request.runId,
        step_id=StepId.EXECUTE,
        task_key=request.taskKey,
        attempt=request.attempt,
        attempt_offset=attempt_offset,
        sandbox_ref=ref,
        provider=provider,
        executor_id=executor_id,
        request=request.model_dump() if request_json is None else request_json,
        finished=finished,
    )


@reconnecting
def _adopt_reconnecting(engine: sa.Engine, request: SandboxRequest) -> None:
    with engine.begin() as conn:
        sandbox_attempts.adopt(
            conn,
            run_id=request.runId,
            step_id=StepId.EXECUTE,
            task_key=request.taskKey,
            attempt=request.attempt,
            executor_id=DBOS.executor_id,
        )


def collect_attempt(
    rt: runtime.Runtime,
    request: SandboxRequest,
    ref: str,
    *,
    attempt_offset: int,
    executor_id: str | None = None,
) -> ErrCode:
    """Wait for a started attempt and record its outcome; returns the errCode the ledger
    holds for it.

    A re-attach waits on the recorded ref rather than calling `start` again: an attempt
    collected just before a crash has left no trace in the provider, and a second start
    would run it again; a wait finds nothing and answers LOST.
    """
    began = time.monotonic()
    try:
        result = normalise(rt.sandbox.wait(request, ref))
    except Exception as exc:  # a provider bug or outage must become an errCode, never success
        cap = rt.settings.sandboxes.artifact_max_bytes
        result = failure_result(request, rt.sandbox.name, exc, began, output_cap=cap)
    return record_outcome(rt.attempts, request, result, attempt_offset, executor_id)


@reconnecting
def record_outcome(
    engine: sa.Engine,
    request: SandboxRequest,
    result: SandboxResult,
    attempt_offset: int,
    executor_id: str | None = None,
) -> ErrCode:
    """Record an attempt's outcome (see `_record_outcome`) in its own transaction."""
    with engine.begin() as conn:
        return _record_outcome(
            conn, request, result, attempt_offset, executor_id or DBOS.executor_id
        )


def _record_outcome(
    conn: sa.Connection,
    request: SandboxRequest,
    result: SandboxResult,
    attempt_offset: int,
    executor_id: str,
) -> ErrCode:
    """Record one attempt's outcome and its artifacts; returns the errCode the ledger holds.

    A run that ended (canceled, or failed for any reason) while the attempt ran gets no
    success from it: the outcome is recorded CANCELED, and so earns no receipt. The run
    row is read FOR SHARE, so a cancel commits either before this check or after the
    outcome. A step can run again after a crash; the attempt's first recorded outcome
    wins and a later one (say, different stdout) is dropped, so ledger and artifacts agree.
    """
    run_id = request.runId
    # The notice is delivered at commit, so only with the outcome it announces.
    status = sandbox_attempts.lock_run_and_notify(conn, run_id=run_id, channel=task_notices.CHANNEL)
    if status.terminal and result.errCode is not ErrCode.CANCELED:
        result = result.model_copy(
            update={
                "errCode": ErrCode.CANCELED,
                "errMessage": f"run {status.value} before the attempt's outcome"
                f" ({result.errCode.value}) was recorded; outcome discarded",
            }
        )
    request_json = request.model_dump()
    _record_started(
        conn,
        request,
        result.sandboxRef,
        result.provider,
        attempt_offset,
        executor_id,
        request_json=request_json,
        finished=True,
    )
    recorded = sandbox_runs.record_attempt(
        conn,
        run_id=run_id,
        step_id=StepId.EXECUTE,
        task_key=request.taskKey,
        attempt=request.attempt,
        attempt_offset=attempt_offset,
        provider=result.provider,
        request=request_json,
        response=_response_of(result),
        err_code=result.errCode.value,
        metrics=result.metrics.model_dump(exclude_none=True),
    )
    if not recorded:
        earlier = sandbox_runs.read_attempt(
            conn,
            run_id=run_id,
            step_id=StepId.EXECUTE,
            task_key=request.taskKey,
            attempt=request.attempt,
        )
        assert earlier is not None
        return ErrCode(earlier.err_code)
    _store_task_artifacts(conn, run_id, result)
    return result.errCode


def _response_of(result: SandboxResult) -> dict[str, Any]:
    return {
        "sandboxRef": result.sandboxRef,
        "exitCode": result.exitCode,
        "errCode": result.errCode.value,
        "errMessage": result.errMessage,
        "isolation": result.isolation,
        "stdoutBytes": len(result.stdout.encode()),
        "stderrBytes": len(result.stderr.encode()),
    }


def _store_task_artifacts(conn: sa.Connection, run_id: str, outcome: SandboxResult) -> None:
    """stdout, stderr, files out and the workspace diff of one attempt, plus the attempt's
    artifact index, in one write; those above the inline threshold go to the blob store."""
    task_key = outcome.taskKey
    prefix = f"attempt/{outcome.attempt}"

    def uri(name: str) -> str:
        return artifact_uri(run_id, StepId.EXECUTE, f"{prefix}/{name}", task_key)

    stored, items = [], []
    for kind, name, content, truncated in _task_outputs(outcome):
        artifact = artifacts.NewArtifact.of(uri(name), kind, content)
        stored.append(artifact)
        items.append(
            {
                "kind": kind,
                "uri": artifact.uri,
                "sha256": artifact.sha256,
                "size": len(content),
                "truncated": truncated,
            }
        )
    index = {
        "taskKey": task_key,
        "attempt": outcome.attempt,
        "provider": outcome.provider,
        "isolation": outcome.isolation,
        "errCode": outcome.errCode.value,
        "exitCode": outcome.exitCode,
        "sandboxRef": outcome.sandboxRef,
        "metrics": outcome.metrics.model_dump(exclude_none=True),
        "items": items,
    }
    stored.append(
        artifacts.NewArtifact.of(uri("index"), "artifact_index", canonical_json(index).encode())
    )
    artifacts.put_artifacts(
        conn,
        stored,
        run_id=run_id,
        step_id=StepId.EXECUTE,
        task_key=task_key,
        spill=runtime.current().spill(),
    )


def _task_outputs(outcome: SandboxResult) -> list[tuple[str, str, bytes, bool]]:
    """(kind, name, bytes, truncated) of what a task produced; the provider capped each."""
    outputs = [(kind, kind, raw, truncated) for kind, raw, truncated in outcome.kept_output()]
    for produced in outcome.filesOut:
        raw = base64.b64decode(produced.contentB64)
        outputs.append(("file", f"files/{produced.path}", raw, produced.truncated))
    diff = outcome.workspaceDiff
    if diff is not None:
        listing = diff.model_copy(update={"patch": ""}).model_dump_json(exclude={"patch"})
        outputs.append(("diff_patch", "diff.patch", diff.patch.encode(), False))
        outputs.append(("diff_index", "diff.json", listing.encode(), False))
    return outputs
