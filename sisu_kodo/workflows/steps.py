"""Steps: every piece of I/O the workflows do, each checkpointed by DBOS.

Two kinds:
- *calls* (`DBOS.run_step`): the planner and the sandbox. At-least-once by nature;
  their results are checkpointed so a replay does not call again once recorded.
- *records* (datasource transactions): ledger writes committed in the same transaction
  as DBOS's checkpoint, so each happens exactly once even if a worker dies mid-way.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from typing import Any, TypeVar

import sqlalchemy as sa
from dbos import DBOS

from sisu_kodo.canonical import canonical_json, content_hash
from sisu_kodo.contracts.artifacts import artifact_uri
from sisu_kodo.contracts.plans import Plan, TaskSpec
from sisu_kodo.contracts.runs import (
    STEP_PHASES,
    NextAction,
    RunStatus,
    StepId,
    Workload,
)
from sisu_kodo.contracts.sandbox import ErrCode, SandboxRequest, SandboxResult
from sisu_kodo.db import artifacts, executions, intents, recovery, runs, sandbox_runs
from sisu_kodo.db.engine import reconnecting
from sisu_kodo.errors import AppError
from sisu_kodo.oc.port import CompileRequest
from sisu_kodo.sbx.failures import failure_result, normalise
from sisu_kodo.workflows import runtime
from sisu_kodo.workflows.names import SBX_QUEUE, TASK_WORKFLOW, task_workflow_id
from sisu_kodo.workflows.tasks import derive_tasks

T = TypeVar("T")

TASK_PREVIEW_LIMIT = 50
TASK_POLL_SECONDS = 0.02


class RetryableSandboxFailure(AppError):
    """Raised inside the task step so DBOS retries an infrastructure failure."""


def _record(name: str, body: Callable[..., T], *args: Any) -> T:
    """Run `body(conn, *args)` as an exactly-once datasource transaction step."""
    datasource = runtime.current().datasource

    def in_transaction(*call_args: Any) -> T:
        runtime.chaos_pause(name)
        return body(datasource.sql_session().connection(), *call_args)

    return datasource.run_tx_step(
        {"name": name, "isolation_level": "READ COMMITTED"}, in_transaction, *args
    )


def _start(conn: sa.Connection, run_id: str, step_id: StepId, event: bool = True) -> int:
    attempt = runs.start_step(conn, run_id=run_id, step_id=step_id, phase=STEP_PHASES[step_id])
    if event:
        runs.append_event(
            conn,
            run_id=run_id,
            type="step.started",
            status=RunStatus.RUNNING,
            step_id=step_id,
            detail={"attempt": attempt},
        )
    return attempt


# ---- plan phase --------------------------------------------------------------------------


def begin_plan(run_id: str) -> dict[str, Any] | None:
    """Mark a queued run running and say where planning resumes; None if it can't start.

    On a retry whose CompileST already finished, the recorded plan is returned so the
    planner is not asked again.
    """
    return _record("begin_plan", _begin_plan, run_id)


def _begin_plan(conn: sa.Connection, run_id: str) -> dict[str, Any] | None:
    run = runs.require_run(conn, run_id=run_id, for_update=True)
    if run.status is not RunStatus.QUEUED:
        return None
    intent = intents.read_intent(conn, intent_id=run.intent_id)
    assert intent is not None, "runs.intent_id is a foreign key"
    compiled = runs.read_step_output(conn, run_id=run_id, step_id=StepId.COMPILE)
    resume_at = StepId.DECIDE if compiled else StepId.COMPILE
    runs.transition(
        conn,
        run_id=run_id,
        status=RunStatus.RUNNING,
        event="run.started",
        detail={"resumeAt": resume_at.value, "retryCount": run.retry_count},
        allowed_from=frozenset({RunStatus.QUEUED}),
    )
    attempt = _start(conn, run_id, resume_at)
    plan = None
    if compiled:
        stored = artifacts.read_artifact(conn, uri=compiled["planUri"])
        assert stored is not None
        plan = json.loads(stored.content)
    workload = Workload.model_validate(run.start_request["workload"])
    request = CompileRequest(
        runId=run_id,
        attempt=attempt,
        goal=intent.goal,
        inputs=intent.inputs,
        constraints=intent.constraints,
        taskCount=workload.steps,
    )
    return {
        "request": request.model_dump(),
        "plan": plan,
        "planSha256": compiled["planSha256"] if compiled else None,
    }


def compile_plan(request: dict[str, Any]) -> dict[str, Any]:
    """Ask the planner; returns {"plan": ..., "source": ..., "callId": ..., "detail": ...}."""
    return DBOS.run_step({"name": StepId.COMPILE.value}, _compile_plan, request)


def _compile_plan(request: dict[str, Any]) -> dict[str, Any]:
    runtime.chaos_pause("compile")
    compile_request = CompileRequest.model_validate(request)
    result = runtime.current().planner.compile(compile_request)
    runtime.chaos_pause("compile_answered")  # a kill here: answered, not yet checkpointed
    if not result.plan.tasks:
        raise AppError("the planner returned a plan with no tasks")
    # A planner may propose more tasks than the workload allows; the workload is the cap.
    result.plan.tasks = result.plan.tasks[: compile_request.taskCount]
    return result.model_dump()


def record_plan(run_id: str, compiled: dict[str, Any]) -> dict[str, Any]:
    return _record("record_plan", _record_plan, run_id, compiled)


def _record_plan(conn: sa.Connection, run_id: str, compiled: dict[str, Any]) -> dict[str, Any]:
    plan = compiled["plan"]
    stored = artifacts.put_artifact(
        conn,
        uri=artifact_uri(run_id, StepId.COMPILE, "plan_card"),
        run_id=run_id,
        step_id=StepId.COMPILE,
        kind="plan_card",
        content=canonical_json(plan).encode(),
    )
    output = {
        "planUri": stored.uri,
        "planSha256": stored.sha256,
        "planner": runtime.current().planner.mode,
        "planSource": compiled["source"],
        "opencodeCallId": compiled.get("callId"),
        "planNote": compiled.get("detail"),
        "goal": plan["goal"],
        "design": plan["design"],
        "risks": plan["risks"],
        "tests": plan["tests"],
        "taskCount": len(plan["tasks"]),
    }
    runs.finish_step(conn, run_id=run_id, step_id=StepId.COMPILE, output=output)
    runs.transition(
        conn,
        run_id=run_id,
        status=RunStatus.RUNNING,
        event="step.finished",
        step_id=StepId.COMPILE,
        detail={"planUri": stored.uri, "planSha256": stored.sha256},
        last_step=StepId.COMPILE,
    )
    _start(conn, run_id, StepId.DECIDE)
    return output


def decide_and_open_gate(run_id: str, plan: dict[str, Any], plan_sha256: str) -> dict[str, Any]:
    return _record("decide_and_open_gate", _decide_and_open_gate, run_id, plan, plan_sha256)


def _decide_and_open_gate(
    conn: sa.Connection, run_id: str, plan: dict[str, Any], plan_sha256: str
) -> dict[str, Any]:
    run = runs.require_run(conn, run_id=run_id)
    intent = intents.read_intent(conn, intent_id=run.intent_id)
    assert intent is not None
    tasks = derive_tasks(
        run_id=run_id,
        plan=Plan.model_validate(plan),
        goal=intent.goal,
        constraints=intent.constraints,
        timeout_ms=runtime.current().settings.sandboxes.task_timeout_ms,
    )
    task_dicts = [task.model_dump() for task in tasks]
    stored = artifacts.put_artifact(
        conn,
        uri=artifact_uri(run_id, StepId.DECIDE, "task_list"),
        run_id=run_id,
        step_id=StepId.DECIDE,
        kind="task_list",
        content=canonical_json(task_dicts).encode(),
    )
    output = {
        "planSha256": plan_sha256,
        "tasksSha256": stored.sha256,
        "taskListUri": stored.uri,
        "taskCount": len(tasks),
        "concurrency": run.start_request["workload"]["concurrency"],
        "tasks": [
            {"taskKey": t.taskKey, "name": t.name, "command": t.command, "labels": t.labels}
            for t in tasks[:TASK_PREVIEW_LIMIT]
        ],
        "tasksTruncated": len(tasks) > TASK_PREVIEW_LIMIT,
    }
    runs.finish_step(conn, run_id=run_id, step_id=StepId.DECIDE, output=output)
    runs.transition(
        conn,
        run_id=run_id,
        status=RunStatus.WAITING_INPUT,
        event="gate.opened",
        step_id=StepId.DECIDE,
        detail={"planSha256": plan_sha256, "tasksSha256": stored.sha256, "taskCount": len(tasks)},
        last_step=StepId.DECIDE,
        next_action=NextAction.APPROVE_PLAN,
        plan_sha256=plan_sha256,
        tasks_sha256=stored.sha256,
    )
    return output


# ---- execute phase -----------------------------------------------------------------------


def begin_execute(run_id: str) -> dict[str, Any] | None:
    """Check the approval binds to the decided tasks and start an ExecuteST attempt.

    Returns the tasks still to run, each with the attempt number its new round starts
    after. None when the run is not (or no longer) approved and queued.
    """
    return _record("begin_execute", _begin_execute, run_id)


def _begin_execute(conn: sa.Connection, run_id: str) -> dict[str, Any] | None:
    run = runs.require_run(conn, run_id=run_id, for_update=True)
    if run.status is not RunStatus.QUEUED or run.last_step not in (StepId.DECIDE, StepId.EXECUTE):
        return None
    decision = runs.read_decision(conn, run_id=run_id)
    task_list = artifacts.read_artifact(conn, uri=artifact_uri(run_id, StepId.DECIDE, "task_list"))
    bound = (
        decision is not None
        and decision.decision == "approved"
        and decision.plan_sha256 == run.plan_sha256
        and decision.tasks_sha256 == run.tasks_sha256
        and task_list is not None
        and task_list.meta.sha256 == run.tasks_sha256
    )
    if not bound:
        runs.transition(
            conn,
            run_id=run_id,
            status=RunStatus.FAILED,
            event="run.failed",
            error="the approval does not bind to the decided plan and task list",
        )
        return None
    assert task_list is not None
    runs.transition(
        conn,
        run_id=run_id,
        status=RunStatus.RUNNING,
        event="run.started",
        detail={"resumeAt": StepId.EXECUTE.value, "retryCount": run.retry_count},
    )
    _start(conn, run_id, StepId.EXECUTE)
    tasks = json.loads(task_list.content)
    views = executions.task_views(
        conn,
        run_id=run_id,
        tasks=tasks,
        max_attempts=runtime.current().settings.queues.task_max_attempts,
    )
    # Tasks that already succeeded (an earlier round of a retried run) are never re-run.
    to_run = [
        {**task, "attemptOffset": view.attempt}
        for task, view in zip(tasks, views, strict=True)
        if view.status != "succeeded"
    ]
    return {
        "tasks": to_run,
        "concurrency": run.start_request["workload"]["concurrency"],
        "partitionKey": run.queue_partition_key,
        "retryCount": run.retry_count,
    }


def run_sandbox_task(run_id: str, task: dict[str, Any]) -> dict[str, Any]:
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


def _run_sandbox_attempt(run_id: str, task: dict[str, Any]) -> dict[str, Any]:
    rt = runtime.current()
    offset = int(task.get("attemptOffset", 0))
    spec = TaskSpec.model_validate({k: v for k, v in task.items() if k != "attemptOffset"})
    status = DBOS.step_status
    round_attempt = (status.current_attempt or 0) + 1 if status else 1
    request = SandboxRequest(
        runId=run_id,
        taskKey=spec.taskKey,
        attempt=offset + round_attempt,
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
    code = _record_attempt_reconnecting(rt.engine, run_id, request, result, offset)
    if ErrCode(code).retryable and round_attempt < rt.settings.queues.task_max_attempts:
        raise RetryableSandboxFailure(
            f"task {spec.name} attempt {request.attempt}: {code}",
            {"taskKey": spec.taskKey, "errCode": code},
        )
    return {"taskKey": spec.taskKey, "attempt": request.attempt, "errCode": code}


@reconnecting
def _record_attempt_reconnecting(
    engine: sa.Engine, run_id: str, request: SandboxRequest, result: SandboxResult, offset: int
) -> str:
    with engine.begin() as conn:
        return _record_attempt(conn, run_id, request, result, offset)


def _record_attempt(
    conn: sa.Connection,
    run_id: str,
    request: SandboxRequest,
    result: SandboxResult,
    offset: int,
) -> str:
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
        provider=result.provider,
        request=request.model_dump(),
        response=_response_of(result, offset),
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
        return earlier.err_code
    _store_task_artifacts(conn, run_id, result)
    return result.errCode.value


def _response_of(result: SandboxResult, attempt_offset: int) -> dict[str, Any]:
    return {
        "sandboxRef": result.sandboxRef,
        "exitCode": result.exitCode,
        "errCode": result.errCode.value,
        "errMessage": result.errMessage,
        "isolation": result.isolation,
        "stdoutBytes": len(result.stdout.encode()),
        "stderrBytes": len(result.stderr.encode()),
        "attemptOffset": attempt_offset,
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


def enqueue_tasks(
    run_id: str, tasks: list[dict[str, Any]], partition_key: str, retry_count: int
) -> list[str]:
    """Enqueue a batch of task workflows on sbxQ in ONE system-database transaction.

    Each task's workflow id derives from its taskKey (and the retry round), so a step run
    again after a crash re-attaches to the rows it already wrote (an upsert that changes
    nothing) instead of duplicating them.
    """
    return DBOS.run_step(
        {"name": "enqueue_tasks"}, _enqueue_tasks, run_id, tasks, partition_key, retry_count
    )


@reconnecting
def _enqueue_tasks(
    run_id: str, tasks: list[dict[str, Any]], partition_key: str, retry_count: int
) -> list[str]:
    rt = runtime.current()
    workflow_ids = []
    with rt.system_engine.begin() as conn:
        for task in tasks:
            workflow_id = task_workflow_id(task["taskKey"], retry_count)
            rt.client.enqueue_in_transaction(
                conn,
                {
                    "workflow_name": TASK_WORKFLOW,
                    "queue_name": SBX_QUEUE,
                    "workflow_id": workflow_id,
                    "queue_partition_key": partition_key,
                    "app_version": rt.settings.topology.app_version,
                },
                run_id,
                task,
            )
            workflow_ids.append(workflow_id)
    return workflow_ids


def await_tasks(workflow_ids: list[str]) -> dict[str, str]:
    """Block until at least one of the task workflows has ended; return every ended one.

    One checkpointed step frees as many slots of the fan-out window as have finished,
    instead of one recorded wait and one recorded result per task.
    """
    return DBOS.run_step({"name": "await_tasks"}, _await_tasks, workflow_ids)


def _await_tasks(workflow_ids: list[str]) -> dict[str, str]:
    while True:
        ended = _ended_workflows(workflow_ids)
        if ended:
            return ended
        time.sleep(TASK_POLL_SECONDS)


@reconnecting
def _ended_workflows(workflow_ids: list[str]) -> dict[str, str]:
    with runtime.current().system_engine.connect() as conn:
        return recovery.finished_workflows(conn, workflow_ids=workflow_ids)


def record_receipts(run_id: str, task_keys: list[str]) -> int:
    """Commit one receipt per succeeded task among `task_keys`, exactly once (a batch)."""
    return _record("record_receipts", _record_receipts, run_id, task_keys)


def _record_receipts(conn: sa.Connection, run_id: str, task_keys: list[str]) -> int:
    succeeded = sandbox_runs.succeeded_task_keys(
        conn, run_id=run_id, step_id=StepId.EXECUTE, task_keys=task_keys
    )
    for task_key in succeeded:
        sandbox_runs.record_receipt(conn, run_id=run_id, task_key=task_key)
    return len(succeeded)


def finish_execute(run_id: str) -> str:
    """Aggregate every task's latest attempt from the ledger into ExecuteST's output."""
    return _record("finish_execute", _finish_execute, run_id)


def _finish_execute(conn: sa.Connection, run_id: str) -> str:
    ordered = [
        view.model_dump()
        for view in executions.task_views(
            conn,
            run_id=run_id,
            tasks=executions.decided_tasks(conn, run_id=run_id),
            max_attempts=runtime.current().settings.queues.task_max_attempts,
        )
    ]
    failed = [outcome for outcome in ordered if outcome["status"] != "succeeded"]
    output = {
        "errCode": failed[0]["errCode"] if failed else ErrCode.NONE.value,
        "taskCount": len(ordered),
        "succeeded": len(ordered) - len(failed),
        "failed": len(failed),
        "wallMs": max((o["wallMs"] or 0 for o in ordered), default=0),
        "tasksSha256": content_hash([o["taskKey"] for o in ordered]),
        "raw": {"tasks": ordered},
    }
    runs.finish_step(conn, run_id=run_id, step_id=StepId.EXECUTE, output=output)
    if not failed:
        runs.transition(
            conn,
            run_id=run_id,
            status=RunStatus.SUCCEEDED,
            event="run.succeeded",
            step_id=StepId.EXECUTE,
            detail={"taskCount": len(ordered)},
            last_step=StepId.EXECUTE,
        )
        return RunStatus.SUCCEEDED.value
    first = failed[0]
    error = (
        f"task {first['name']} ({first['taskKey'][:12]}) failed with {first['errCode']}"
        f" at attempt {first['attempt']}"
        + (f", exit code {first['exitCode']}" if first["exitCode"] is not None else "")
        + f"; {len(failed)} of {len(ordered)} task(s) failed"
    )
    runs.transition(
        conn,
        run_id=run_id,
        status=RunStatus.RETRIES_EXCEEDED,
        event="run.retries_exceeded",
        step_id=StepId.EXECUTE,
        detail={"failed": [o["taskKey"] for o in failed], "errCode": first["errCode"]},
        last_step=StepId.EXECUTE,
        next_action=NextAction.REPAIR,
        error=error,
    )
    return RunStatus.RETRIES_EXCEEDED.value


# ---- failure ----------------------------------------------------------------------------


def fail_run(run_id: str, error: str) -> None:
    _record("fail_run", _fail_run, run_id, error)


def _fail_run(conn: sa.Connection, run_id: str, error: str) -> None:
    run = runs.require_run(conn, run_id=run_id, for_update=True)
    if run.status.terminal:
        return
    runs.transition(
        conn,
        run_id=run_id,
        status=RunStatus.FAILED,
        event="run.failed",
        detail={"error": error},
        next_action=NextAction.REPAIR,
        error=error,
    )
