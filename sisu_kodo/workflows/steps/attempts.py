"""One task's sandbox attempts: call the sandbox port, record each attempt and its artifacts."""

from __future__ import annotations

import base64
import time
from typing import Any

import sqlalchemy as sa
from dbos import DBOS

from sisu_kodo.canonical import canonical_json
from sisu_kodo.contracts.artifacts import artifact_uri
from sisu_kodo.contracts.runs import StepId
from sisu_kodo.contracts.sandbox import ErrCode, SandboxRequest, SandboxResult
from sisu_kodo.db import artifacts, sandbox_runs, task_notices
from sisu_kodo.db.engine import reconnecting
from sisu_kodo.errors import AppError
from sisu_kodo.sbx.failures import failure_result, normalise
from sisu_kodo.workflows import runtime
from sisu_kodo.workflows.payloads import TaskOutcome, TaskRun


class RetryableSandboxFailure(AppError):
    """Raised inside the task step so DBOS retries an infrastructure failure."""


def run_sandbox_task(run_id: str, task: TaskRun) -> TaskOutcome:
    """Run one task through the sandbox port, retrying infrastructure failures.

    Each attempt records itself (its `sbx_runs` row and its artifacts) before the step
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
    rt = runtime.current()
    spec = task.spec
    status = DBOS.step_status
    round_attempt = (status.current_attempt or 0) + 1 if status else 1
    request = SandboxRequest(
        runId=run_id,
        taskKey=spec.taskKey,
        attempt=task.attempt_offset + round_attempt,
        command=spec.command,
        env=spec.env,
        timeoutMs=spec.timeoutMs,
        labels=spec.labels,
    )
    started = time.monotonic()
    try:
        result = normalise(rt.sandbox.run(request))
    except Exception as exc:  # a provider bug or outage must become an errCode, never success
        result = failure_result(
            request,
            rt.sandbox.name,
            exc,
            started,
            output_cap=rt.settings.sandboxes.artifact_max_bytes,
        )
    code = _record_attempt_reconnecting(rt.engine, run_id, request, result, task.attempt_offset)
    if code.retryable and round_attempt < rt.settings.queues.task_max_attempts:
        raise RetryableSandboxFailure(
            f"task {spec.name} attempt {request.attempt}: {code.value}",
            {"taskKey": spec.taskKey, "errCode": code.value},
        )
    return TaskOutcome(task_key=spec.taskKey, attempt=request.attempt, err_code=code)


@reconnecting
def _record_attempt_reconnecting(
    engine: sa.Engine,
    run_id: str,
    request: SandboxRequest,
    result: SandboxResult,
    attempt_offset: int,
) -> ErrCode:
    with engine.begin() as conn:
        return _record_attempt(conn, run_id, request, result, attempt_offset)


def _record_attempt(
    conn: sa.Connection,
    run_id: str,
    request: SandboxRequest,
    result: SandboxResult,
    attempt_offset: int,
) -> ErrCode:
    """Record one attempt and its artifacts; returns the errCode the ledger holds for it.

    A step can run again after a crash; the attempt's first recorded execution wins and a
    re-run's result (say, different stdout) is dropped, so ledger and artifacts agree.
    """
    recorded = sandbox_runs.record_attempt(
        conn,
        run_id=run_id,
        step_id=StepId.EXECUTE,
        task_key=request.taskKey,
        attempt=request.attempt,
        attempt_offset=attempt_offset,
        provider=result.provider,
        request=request.model_dump(),
        response=_response_of(result),
        err_code=result.errCode.value,
        metrics=result.metrics.model_dump(exclude_none=True),
    )
    task_notices.notify_task_done(conn, run_id=run_id)
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
    """stdout, stderr and files out of one attempt, plus the attempt's artifact index."""
    task_key = outcome.taskKey
    prefix = f"attempt/{outcome.attempt}"
    items = []
    for kind, name, content, truncated in _task_outputs(outcome):
        stored = artifacts.put_artifact(
            conn,
            uri=artifact_uri(run_id, StepId.EXECUTE, f"{prefix}/{name}", task_key),
            run_id=run_id,
            step_id=StepId.EXECUTE,
            task_key=task_key,
            kind=kind,
            content=content,
        )
        items.append(
            {
                "kind": kind,
                "uri": stored.uri,
                "sha256": stored.sha256,
                "size": stored.size,
                "truncated": truncated,
            }
        )
    artifacts.put_artifact(
        conn,
        uri=artifact_uri(run_id, StepId.EXECUTE, f"{prefix}/index", task_key),
        run_id=run_id,
        step_id=StepId.EXECUTE,
        task_key=task_key,
        kind="artifact_index",
        content=canonical_json(
            {
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
        ).encode(),
    )


def _task_outputs(outcome: SandboxResult) -> list[tuple[str, str, bytes, bool]]:
    """(kind, name, bytes, truncated) of what a task produced; the provider capped each."""
    outputs = [(kind, kind, raw, truncated) for kind, raw, truncated in outcome.kept_output()]
    for produced in outcome.filesOut:
        raw = base64.b64decode(produced.contentB64)
        outputs.append(("file", f"files/{produced.path}", raw, produced.truncated))
    return outputs
