"""The execute phase's steps: start ExecuteST, enqueue and await task workflows, commit
receipts, and aggregate every task's outcome into ExecuteST's output."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from dbos import DBOS

from sisu_kodo.blobs import BlobIntegrityError, BlobMissingError
from sisu_kodo.budgets import exhausted_message, measure
from sisu_kodo.canonical import canonical_json, content_hash
from sisu_kodo.contracts.artifacts import artifact_uri
from sisu_kodo.contracts.runs import (
    ExecuteOutput,
    ExecuteRaw,
    NextAction,
    RunStatus,
    StepId,
    TaskView,
)
from sisu_kodo.contracts.sandbox import ErrCode
from sisu_kodo.db import approvals, artifacts, executions, recovery, runs, sandbox_runs, workspaces
from sisu_kodo.db.engine import reconnecting
from sisu_kodo.deadlines import WaitTimeout, wait_until
from sisu_kodo.errors import AppError
from sisu_kodo.gates.scope import approved_sha256
from sisu_kodo.workflows import runtime
from sisu_kodo.workflows.names import SBX_QUEUE, TASK_WORKFLOW, task_workflow_id
from sisu_kodo.workflows.payloads import BudgetStop, ExecutionStart, TaskRun
from sisu_kodo.workflows.steps.ledger import start_step, transaction
from sisu_kodo.workflows.steps.planning import open_gate_clock

# Between a task's final attempt in the ledger and DBOS marking its workflow ended.
TASK_POLL_SECONDS = 0.02


@transaction("begin_execute")
def begin_execute(conn: sa.Connection, run_id: str) -> ExecutionStart | None:
    """Check the approval binds to the decided tasks (and to the workspace snapshot, whose
    stored bytes must still hash to it) and start an ExecuteST attempt.

    Returns the tasks still to run, each with the attempt number its new round starts
    after. None when the run is not (or no longer) approved and queued.
    """
    run = runs.require_run(conn, run_id=run_id, for_update=True)
    if run.status is not RunStatus.QUEUED or run.last_step not in (StepId.DECIDE, StepId.EXECUTE):
        return None
    decision = runs.read_decision(conn, run_id=run_id)
    task_list = artifacts.read_artifact(conn, uri=artifact_uri(run_id, StepId.DECIDE, "task_list"))
    approved = approvals.read_approved_tasks(conn, run_id=run_id)
    bound = (
        decision is not None
        and decision.decision == "approved"
        and decision.plan_sha256 == run.plan_sha256
        and decision.tasks_sha256 == run.tasks_sha256
        and task_list is not None
        and task_list.meta.sha256 == run.tasks_sha256
        and (approved.keys is None or approved_sha256(approved.keys) == approved.sha256)
    )
    workspace = workspaces.read_run_workspace(conn, run_id=run_id)
    workspace_sha256 = workspace.snapshot_sha256 if workspace else None
    problem = None if bound else "the approval does not bind to the decided plan and task list"
    if problem is None and decision is not None:
        problem = _workspace_problem(decision.workspace_sha256, workspace_sha256)
    if problem is not None:
        runs.transition(
            conn, run_id=run_id, status=RunStatus.FAILED, event="run.failed", error=problem
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
    start_step(conn, run_id, StepId.EXECUTE)
    tasks = executions.parse_task_list(task_list.content)
    views = executions.task_views(
        conn,
        run_id=run_id,
        tasks=tasks,
        max_attempts=runtime.current().settings.queues.task_max_attempts,
    )
    # Tasks that already succeeded (an earlier round of a retried run, or a canary) are
    # never re-run; tasks outside the approved set never run.
    allowed = set(approved.keys) if approved.keys is not None else None
    to_run = [
        TaskRun(spec=task, attempt_offset=view.attempt, workspace_sha256=workspace_sha256)
        for task, view in zip(tasks, views, strict=True)
        if view.status != "succeeded" and (allowed is None or task.taskKey in allowed)
    ]
    return ExecutionStart(
        tasks=to_run,
        concurrency=run.start_request["workload"]["concurrency"],
        partition_key=run.queue_partition_key,
        retry_count=run.retry_count,
    )


def _workspace_problem(approved: str | None, captured: str | None) -> str | None:
    """Why execution must not run on the captured snapshot, or None."""
    if approved != captured:
        return (
            f"the approval binds workspace {approved or 'none'}, the run has"
            f" {captured or 'none'}: execution refuses a snapshot that differs"
        )
    if captured is None:
        return None
    try:
        runtime.current().require_blobs().get(captured)
    except (BlobMissingError, BlobIntegrityError) as exc:
        return f"the approved workspace snapshot cannot be used: {exc}"
    return None


def enqueue_tasks(
    run_id: str, tasks: list[TaskRun], partition_key: str, retry_count: int
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
    run_id: str, tasks: list[TaskRun], partition_key: str, retry_count: int
) -> list[str]:
    rt = runtime.current()
    workflow_ids = []
    with rt.system_engine.begin() as conn:
        for task in tasks:
            workflow_id = task_workflow_id(task.spec.taskKey, retry_count)
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


def _refuse_unapproved(engine: sa.Engine, run_id: str, tasks: list[TaskRun]) -> None:
    """ExecuteST runs nothing the approval does not cover (the bound task set)."""
    with engine.connect() as conn:
        approved = approvals.read_approved_tasks(conn, run_id=run_id)
    if approved.keys is None:
        return
    outside = [task.spec.taskKey for task in tasks if task.spec.taskKey not in approved.keys]
    if outside or approved_sha256(approved.keys) != approved.sha256:
        raise AppError(
            f"refusing {len(outside)} task(s) outside the approved task set"
            f" {approved.sha256}: {outside[:5]}",
            {"taskKeys": outside},
        )


def await_tasks(run_id: str, in_flight: dict[str, str]) -> dict[str, str]:
    """Block until at least one task workflow of `in_flight` ({workflow id: taskKey}) has
    ended; return every ended one with its final status.

    One checkpointed step frees as many slots of the fan-out window as have finished,
    instead of one recorded wait and one recorded result per task.
    """
    return DBOS.run_step({"name": "await_tasks"}, _await_tasks, run_id, in_flight)


def _await_tasks(run_id: str, in_flight: dict[str, str]) -> dict[str, str]:
    """Sleep on the run's wake-ups, reading durable state once per wake-up.

    A wake-up means some task of the run recorded an attempt. "Ended" stays DBOS's final
    workflow status (the slot is free only once the task workflow is done), but the
    ledger row commits a moment before DBOS marks the workflow SUCCESS: when the ledger
    shows a final attempt, the status is polled briefly until it catches up. Without
    wake-ups (abnormal ends write no attempt; notices lost while no listener ran), the
    status is rechecked every SISU_TASK_RECHECK_SECONDS, so a parent recovered on
    another worker sees every completion too.
    """
    rt = runtime.current()
    recheck = rt.settings.queues.task_recheck_seconds
    workflow_ids = list(in_flight)
    with rt.wakeups.watch(run_id) as woken:
        while True:
            woken.clear()  # before the check: a notice arriving during it is not lost
            ended = _ended_workflows(workflow_ids)
            if ended:
                return ended
            if woken.wait(recheck) and _ending_tasks(run_id, in_flight):
                ended = _await_ending(workflow_ids, recheck)
                if ended:
                    return ended


def _await_ending(workflow_ids: list[str], timeout: float) -> dict[str, str]:
    """The ended ones among `workflow_ids`, polled while a final attempt's workflow ends."""
    try:
        return wait_until(
            lambda: _ended_workflows(workflow_ids),
            timeout=timeout,
            interval=TASK_POLL_SECONDS,
            max_interval=1.0,
            what="a task workflow with a final attempt to end",
        )
    except WaitTimeout:  # e.g. its worker died before DBOS marked it: recovery ends it
        return {}


@reconnecting
def _ending_tasks(run_id: str, in_flight: dict[str, str]) -> set[str]:
    rt = runtime.current()
    with rt.engine.connect() as conn:
        return sandbox_runs.final_task_keys(
            conn,
            run_id=run_id,
            step_id=StepId.EXECUTE,
            task_keys=list(in_flight.values()),
            max_attempts=rt.settings.queues.task_max_attempts,
        )


@reconnecting
def _ended_workflows(workflow_ids: list[str]) -> dict[str, str]:
    with runtime.current().system_engine.connect() as conn:
        return recovery.finished_workflows(conn, workflow_ids=workflow_ids)


def check_start(run_id: str, tasks: list[TaskRun]) -> BudgetStop | None:
    """Before the first task starts: refuse any task the approval does not cover, and
    say which budget the run has already reached (a retried run), if any."""
    return DBOS.run_step({"name": "check_start"}, _check_start, run_id, tasks)


@reconnecting
def _check_start(run_id: str, tasks: list[TaskRun]) -> BudgetStop | None:
    _refuse_unapproved(runtime.current().engine, run_id, tasks)
    with runtime.current().engine.connect() as conn:
        return _budget_stop(conn, run_id)


def _budget_stop(conn: sa.Connection, run_id: str) -> BudgetStop | None:
    """The budget the run has reached, if any (read from the ledger)."""
    rt = runtime.current()
    run = runs.require_run(conn, run_id=run_id)
    budget = measure(conn, run, minute_seconds=rt.settings.gates.budget_minute_seconds).exhausted
    if budget is None:
        return None
    return BudgetStop(
        budget=budget.name,
        message=exhausted_message(budget),
        cancel_in_flight=rt.settings.gates.budget_cancel_in_flight,
    )


def cancel_tasks(workflow_ids: list[str]) -> None:
    """Cancel in-flight task workflows (a budget was reached); the cancel watcher stops
    their sandboxes once the run has ended."""
    DBOS.run_step({"name": "cancel_tasks"}, _cancel_tasks, workflow_ids)


@reconnecting
def _cancel_tasks(workflow_ids: list[str]) -> None:
    runtime.current().client.cancel_workflows(workflow_ids)


@transaction("record_receipts")
def settle_tasks(
    conn: sa.Connection, run_id: str, task_keys: list[str], *, check_budgets: bool
) -> BudgetStop | None:
    """Commit one receipt per succeeded task among `task_keys` (ended task workflows),
    exactly once, as a batch; with `check_budgets`, say in the same transaction which
    budget the run has reached, if any (the fan-out then starts no new task)."""
    succeeded = sandbox_runs.succeeded_task_keys(
        conn, run_id=run_id, step_id=StepId.EXECUTE, task_keys=task_keys
    )
    sandbox_runs.record_receipts(conn, run_id=run_id, task_keys=succeeded)
    return _budget_stop(conn, run_id) if check_budgets else None


@transaction("finish_execute")
def finish_execute(conn: sa.Connection, run_id: str, stopped: BudgetStop | None = None) -> str:
    """Aggregate every task's latest attempt from the ledger into ExecuteST's output; after
    a canary that succeeded, park the run at the gate again (APPROVE_CANARY)."""
    tasks = executions.decided_tasks(conn, run_id=run_id)
    approved = approvals.read_approved_tasks(conn, run_id=run_id)
    outside = (
        frozenset(t.taskKey for t in tasks) - set(approved.keys)
        if approved.keys is not None
        else frozenset()
    )
    # Outside a canary's set a task waits for the next approval; outside a subset, skipped.
    waiting = outside if approved.canary is not None else frozenset()
    views = executions.task_views(
        conn,
        run_id=run_id,
        tasks=tasks,
        max_attempts=runtime.current().settings.queues.task_max_attempts,
        skipped=outside - waiting,
    )
    output = summarise_tasks(views, waiting=waiting)
    runs.finish_step(conn, run_id=run_id, step_id=StepId.EXECUTE, output=output.model_dump())
    failed = output.failed_tasks(waiting)
    if stopped is not None:
        return _stop_for_budget(conn, run_id, output, stopped)
    if not failed and waiting:
        return _park_after_canary(conn, run_id, output, len(waiting))
    if not failed:
        runs.transition(
            conn,
            run_id=run_id,
            status=RunStatus.SUCCEEDED,
            event="run.succeeded",
            step_id=StepId.EXECUTE,
            detail={"taskCount": output.taskCount},
            last_step=StepId.EXECUTE,
        )
        return RunStatus.SUCCEEDED.value
    detail = {"failed": [task.taskKey for task in failed], "errCode": failed[0].errCode}
    return _end_for_repair(conn, run_id, detail, failure_message(failed, output.taskCount))


def _end_for_repair(conn: sa.Connection, run_id: str, detail: dict[str, Any], error: str) -> str:
    """ExecuteST ends the run retries_exceeded: a person repairs, then retries."""
    runs.transition(
        conn,
        run_id=run_id,
        status=RunStatus.RETRIES_EXCEEDED,
        event="run.retries_exceeded",
        step_id=StepId.EXECUTE,
        detail=detail,
        last_step=StepId.EXECUTE,
        next_action=NextAction.REPAIR,
        error=error,
    )
    return RunStatus.RETRIES_EXCEEDED.value


def _stop_for_budget(
    conn: sa.Connection, run_id: str, output: ExecuteOutput, stopped: BudgetStop
) -> str:
    """End the run retries_exceeded (REPAIR) naming the budget; a `budget` artifact keeps
    the figures (every budget's use and limit, and the tasks that never started)."""
    run = runs.require_run(conn, run_id=run_id)
    report = measure(
        conn, run, minute_seconds=runtime.current().settings.gates.budget_minute_seconds
    )
    not_started = [task.taskKey for task in output.raw.tasks if task.status == "pending"]
    figures = {
        "budget": stopped.budget,
        "budgets": report.figures(),
        "retryCount": run.retry_count,
        "tasksNotStarted": len(not_started),
        "canceledInFlight": stopped.cancel_in_flight,
    }
    name = "budget" if run.retry_count == 0 else f"budget-r{run.retry_count}"
    stored = artifacts.put_artifact(
        conn,
        uri=artifact_uri(run_id, StepId.EXECUTE, name),
        run_id=run_id,
        step_id=StepId.EXECUTE,
        kind="budget",
        content=canonical_json(figures).encode(),
    )
    detail = {"budget": stopped.budget, "budgetUri": stored.uri, **figures}
    return _end_for_repair(conn, run_id, detail, stopped.message)


def _park_after_canary(
    conn: sa.Connection, run_id: str, output: ExecuteOutput, remaining: int
) -> str:
    """The canary succeeded: its results stay visible, the run waits for the rest."""
    runs.transition(
        conn,
        run_id=run_id,
        status=RunStatus.WAITING_INPUT,
        event="gate.canary_parked",
        step_id=StepId.EXECUTE,
        detail={"canary": output.succeeded, "remaining": remaining},
        last_step=StepId.EXECUTE,
        next_action=NextAction.APPROVE_CANARY,
    )
    run = runs.require_run(conn, run_id=run_id)
    open_gate_clock(conn, run)
    return RunStatus.WAITING_INPUT.value


def summarise_tasks(views: list[TaskView], waiting: frozenset[str] = frozenset()) -> ExecuteOutput:
    """ExecuteST's output from each task's latest attempt (in task-list order); `waiting`
    tasks (not yet approved after a canary) count neither as succeeded nor as failed."""
    failed = [
        view
        for view in views
        if view.status not in ("succeeded", "skipped") and view.taskKey not in waiting
    ]
    return ExecuteOutput(
        errCode=failed[0].errCode if failed else ErrCode.NONE.value,
        taskCount=len(views),
        succeeded=sum(1 for view in views if view.status == "succeeded"),
        failed=len(failed),
        wallMs=max((view.wallMs or 0 for view in views), default=0),
        tasksSha256=content_hash([view.taskKey for view in views]),
        raw=ExecuteRaw(tasks=views),
    )


def failure_message(failed: list[TaskView], task_count: int) -> str:
    """The run's error when `failed` (non-empty, in task-list order) did not succeed."""
    first = failed[0]
    exit_code = f", exit code {first.exitCode}" if first.exitCode is not None else ""
    return (
        f"task {first.name} ({first.taskKey[:12]}) failed with {first.errCode}"
        f" at attempt {first.attempt}{exit_code}; {len(failed)} of {task_count} task(s) failed"
    )
