"""The plan phase's steps: start (or resume) planning, CompileST, DecideST and the gate."""

from __future__ import annotations

import sqlalchemy as sa
from dbos import DBOS

from sisu_kodo.canonical import canonical_json
from sisu_kodo.contracts.artifacts import artifact_uri
from sisu_kodo.contracts.plans import Plan
from sisu_kodo.contracts.runs import (
    CompileOutput,
    DecideOutput,
    NextAction,
    RunStatus,
    StepId,
    TaskPreview,
    Workload,
)
from sisu_kodo.db import artifacts, gates, intents, recipes, run_tasks, runs, workspaces
from sisu_kodo.errors import AppError
from sisu_kodo.gates.deadlines import approval_ttl
from sisu_kodo.oc.port import CompileRequest, PlanResult
from sisu_kodo.workflows import runtime
from sisu_kodo.workflows.payloads import PlanStart, RecordedPlan
from sisu_kodo.workflows.steps.ledger import start_step, transaction
from sisu_kodo.workflows.tasks import derive_tasks

TASK_PREVIEW_LIMIT = 50


@transaction("begin_plan")
def begin_plan(conn: sa.Connection, run_id: str) -> PlanStart | None:
    """Mark a queued run running and say where planning resumes; None if it can't start.

    On a retry whose CompileST already finished, the recorded plan is returned so the
    planner is not asked again.
    """
    run = runs.require_run(conn, run_id=run_id, for_update=True)
    if run.status is not RunStatus.QUEUED:
        return None
    intent = intents.read_intent(conn, intent_id=run.intent_id)
    assert intent is not None, "runs.intent_id is a foreign key"
    recorded = _recorded_plan(conn, run_id)
    resume_at = StepId.DECIDE if recorded else StepId.COMPILE
    runs.transition(
        conn,
        run_id=run_id,
        status=RunStatus.RUNNING,
        event="run.started",
        detail={"resumeAt": resume_at.value, "retryCount": run.retry_count},
        allowed_from=frozenset({RunStatus.QUEUED}),
    )
    attempt = start_step(conn, run_id, resume_at)
    workload = Workload.model_validate(run.start_request["workload"])
    request = CompileRequest(
        runId=run_id,
        attempt=attempt,
        goal=intent.goal,
        inputs=intent.inputs,
        constraints=intent.constraints,
        taskCount=workload.steps,
    )
    return PlanStart(request=request, recorded=recorded)


def _recorded_plan(conn: sa.Connection, run_id: str) -> RecordedPlan | None:
    """The plan card of the run's latest CompileST attempt, if that attempt finished."""
    output = runs.read_step_output(conn, run_id=run_id, step_id=StepId.COMPILE)
    if not output:
        return None
    compiled = CompileOutput.model_validate(output)
    stored = artifacts.read_artifact(conn, uri=compiled.planUri)
    assert stored is not None, "CompileST's output names its stored plan card"
    return RecordedPlan(plan=Plan.model_validate_json(stored.content), sha256=compiled.planSha256)


def compile_plan(request: CompileRequest) -> PlanResult:
    """Ask the planner for a plan of at most `request.taskCount` tasks (CompileST)."""
    return DBOS.run_step({"name": StepId.COMPILE.value}, _compile_plan, request)


def _compile_plan(request: CompileRequest) -> PlanResult:
    runtime.chaos_pause("compile")
    result = runtime.current().planner.compile(request)
    runtime.chaos_pause("compile_answered")  # a kill here: answered, not yet checkpointed
    if not result.plan.tasks:
        raise AppError("the planner returned a plan with no tasks")
    # A planner may propose more tasks than the workload allows; the workload is the cap.
    result.plan.tasks = result.plan.tasks[: request.taskCount]
    return result


@transaction("record_plan")
def record_plan(conn: sa.Connection, run_id: str, compiled: PlanResult) -> RecordedPlan:
    """Store the plan card, finish CompileST and open DecideST."""
    plan = compiled.plan
    stored = artifacts.put_artifact(
        conn,
        uri=artifact_uri(run_id, StepId.COMPILE, "plan_card"),
        run_id=run_id,
        step_id=StepId.COMPILE,
        kind="plan_card",
        content=canonical_json(plan.model_dump()).encode(),
    )
    output = CompileOutput(
        planUri=stored.uri,
        planSha256=stored.sha256,
        planner=runtime.current().planner.mode,
        planSource=compiled.source,
        opencodeCallId=compiled.callId,
        planNote=compiled.detail,
        goal=plan.goal,
        design=plan.design,
        risks=plan.risks,
        tests=plan.tests,
        taskCount=len(plan.tasks),
    )
    runs.finish_step(conn, run_id=run_id, step_id=StepId.COMPILE, output=output.model_dump())
    runs.transition(
        conn,
        run_id=run_id,
        status=RunStatus.RUNNING,
        event="step.finished",
        step_id=StepId.COMPILE,
        detail={"planUri": stored.uri, "planSha256": stored.sha256},
        last_step=StepId.COMPILE,
    )
    start_step(conn, run_id, StepId.DECIDE)
    return RecordedPlan(plan=plan, sha256=stored.sha256)


@transaction("decide_and_open_gate")
def decide_and_open_gate(conn: sa.Connection, run_id: str, recorded: RecordedPlan) -> DecideOutput:
    """Derive the concrete tasks (DecideST), store the task list, open the approval gate."""
    run = runs.require_run(conn, run_id=run_id)
    intent = intents.read_intent(conn, intent_id=run.intent_id)
    assert intent is not None
    tasks = derive_tasks(
        run_id=run_id,
        plan=recorded.plan,
        goal=intent.goal,
        constraints=intent.constraints,
        timeout_ms=runtime.current().settings.sandboxes.task_timeout_ms,
    )
    stored = artifacts.put_artifact(
        conn,
        uri=artifact_uri(run_id, StepId.DECIDE, "task_list"),
        run_id=run_id,
        step_id=StepId.DECIDE,
        kind="task_list",
        content=canonical_json([task.model_dump() for task in tasks]).encode(),
    )
    run_tasks.record_tasks(conn, run_id=run_id, tasks=tasks)
    workspace = workspaces.read_run_workspace(conn, run_id=run_id)
    workspace_sha256 = workspace.snapshot_sha256 if workspace else None
    output = DecideOutput(
        planSha256=recorded.sha256,
        tasksSha256=stored.sha256,
        taskListUri=stored.uri,
        taskCount=len(tasks),
        concurrency=run.start_request["workload"]["concurrency"],
        tasks=[
            TaskPreview(taskKey=t.taskKey, name=t.name, command=t.command, labels=t.labels)
            for t in tasks[:TASK_PREVIEW_LIMIT]
        ],
        tasksTruncated=len(tasks) > TASK_PREVIEW_LIMIT,
        workspaceSha256=workspace_sha256,
    )
    runs.finish_step(conn, run_id=run_id, step_id=StepId.DECIDE, output=output.model_dump())
    runs.transition(
        conn,
        run_id=run_id,
        status=RunStatus.WAITING_INPUT,
        event="gate.opened",
        step_id=StepId.DECIDE,
        detail={
            "planSha256": recorded.sha256,
            "tasksSha256": stored.sha256,
            "taskCount": len(tasks),
            "workspaceSha256": workspace_sha256,
        },
        last_step=StepId.DECIDE,
        next_action=NextAction.APPROVE_PLAN,
        plan_sha256=recorded.sha256,
        tasks_sha256=stored.sha256,
    )
    open_gate_clock(conn, run)
    return output


def open_gate_clock(conn: sa.Connection, run: runs.RunRow) -> None:
    """Give the gate (the plan's, or a canary's) its deadline, if the intent, the recipe
    or the settings set one."""
    intent = intents.read_intent(conn, intent_id=run.intent_id)
    assert intent is not None, "runs.intent_id is a foreign key"
    constraints = intent.constraints
    recipe = recipes.read_recipe(conn, name=run.recipe_name)
    assert recipe is not None  # app.runs.recipe_name references app.recipes
    settings = runtime.current().settings.gates
    ttl = approval_ttl(constraints, recipe, settings.approval_ttl_seconds)
    if ttl is not None:
        gates.open_deadline(
            conn, run_id=run.id, ttl_seconds=ttl, warn_share=settings.approval_warn_share
        )
