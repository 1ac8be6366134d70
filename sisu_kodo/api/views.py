"""Read models: the RunView and the event list, built from the ledger."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa

from sisu_kodo.api import service
from sisu_kodo.auth import ANONYMOUS_ID, Principal
from sisu_kodo.budgets import measure
from sisu_kodo.config import Settings
from sisu_kodo.contracts.health import WorkerView
from sisu_kodo.contracts.ops import TaskStatus
from sisu_kodo.contracts.runs import (
    ApprovalProgress,
    ApprovalVote,
    ArtifactRef,
    BudgetView,
    GateView,
    NextAction,
    PrincipalRef,
    RunEventView,
    RunStatus,
    RunView,
    StepId,
    StepView,
    TaskPage,
)
from sisu_kodo.contracts.workspaces import RunWorkspace
from sisu_kodo.db import (
    approvals,
    artifacts,
    executions,
    gates,
    recipes,
    run_tasks,
    runs,
    workers,
    workspaces,
)


def iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


TASKS_IN_VIEW = 100


def build_run_view(conn: sa.Connection, *, run_id: str, settings: Settings) -> RunView:
    run = runs.require_run(conn, run_id=run_id)
    step_views = []
    for step in runs.list_steps(conn, run_id=run_id, tasks_limit=TASKS_IN_VIEW):
        output = step.output
        if step.step_id == StepId.EXECUTE and step.finished_at is None:
            output = _live_execution(conn, run_id=run_id, settings=settings)
        elif output is not None and step.task_total is not None:
            output["raw"] = _summarised(output["raw"], run_id, step.task_total)
        step_views.append(
            StepView(
                stepId=step.step_id,
                phase=step.phase,
                attempt=step.attempt,
                startedAt=iso(step.started_at),
                finishedAt=iso(step.finished_at),
                output=output,
            )
        )
    next_action, hint = run.next_action, None
    if run.status is RunStatus.QUEUED:
        hint = _stuck_queue_hint(conn, app_version=run.app_version, settings=settings)
        if hint:
            next_action = NextAction.START_WORKER
    return RunView(
        runId=run.id,
        intentId=run.intent_id,
        workflowId=run.workflow_id,
        status=run.status,
        lastStep=run.last_step,
        nextAction=next_action,
        error=run.error,
        retryCount=run.retry_count,
        queuePartitionKey=run.queue_partition_key,
        recipeName=run.recipe_name,
        appVersion=run.app_version,
        hint=hint,
        createdAt=run.created_at.isoformat(),
        updatedAt=run.updated_at.isoformat(),
        steps=step_views,
        artifacts=[
            ArtifactRef(
                uri=meta.uri,
                kind=meta.kind,
                sha256=meta.sha256,
                size=meta.size,
                stepId=meta.step_id,
                taskKey=meta.task_key,
            )
            for meta in artifacts.list_artifacts(conn, run_id=run_id, exclude_step=StepId.EXECUTE)
        ],
        gate=_gate_view(conn, run_id=run_id),
        budgets=[
            BudgetView(name=b.name, used=round(b.used, 3), allowed=b.allowed, unit=b.unit)
            for b in measure(conn, run, minute_seconds=settings.gates.budget_minute_seconds).budgets
        ],
        workspace=run_workspace(conn, run_id=run_id),
    )


def _gate_view(conn: sa.Connection, *, run_id: str) -> GateView | None:
    deadline = gates.read_deadline(conn, run_id=run_id)
    if deadline is None:
        return None
    return GateView(
        ttlSeconds=deadline.ttl_seconds,
        openedAt=deadline.opened_at.isoformat(),
        warnAt=deadline.warn_at.isoformat(),
        expiresAt=deadline.expires_at.isoformat(),
        warnedAt=iso(deadline.warned_at),
        closedAt=iso(deadline.closed_at),
        closedAs=deadline.closed_as,
    )


def run_workspace(conn: sa.Connection, *, run_id: str) -> RunWorkspace | None:
    """The workspace the run captured at its start, if it has one."""
    row = workspaces.read_run_workspace(conn, run_id=run_id)
    if row is None:
        return None
    return RunWorkspace(
        source="git" if row.source == "git" else "upload",
        url=row.url,
        ref=row.ref,
        commit=row.commit,
        workspaceId=row.workspace_id,
        snapshotSha256=row.snapshot_sha256,
        fileCount=row.file_count,
        size=row.size,
    )


def _summarised(raw: dict[str, Any], run_id: str, total: int) -> dict[str, Any]:
    """A large run's task list is cut to a page, with the link to all of it."""
    if total > TASKS_IN_VIEW:
        raw.update(tasksTruncated=True, taskCount=total, tasksUri=f"/runs/{run_id}/tasks")
    return raw


def _live_execution(conn: sa.Connection, *, run_id: str, settings: Settings) -> dict[str, Any]:
    """ExecuteST's output while it runs: counts, and the first tasks with their latest attempt.

    Counted and paged in SQL over `app.run_tasks`: a 10,000-task run's view reads one
    page of tasks, never the whole task list.
    """
    page = task_page(conn, run_id=run_id, settings=settings, offset=0, limit=TASKS_IN_VIEW)
    counts = run_tasks.count_by_status(
        conn, run_id=run_id, step_id=StepId.EXECUTE, max_attempts=settings.queues.task_max_attempts
    )
    return {
        "taskCount": page.total,
        "completed": counts["succeeded"] + counts["failed"],
        "raw": _summarised({"tasks": page.tasks}, run_id, page.total),
    }


def task_page(
    conn: sa.Connection,
    *,
    run_id: str,
    settings: Settings,
    offset: int,
    limit: int,
    status: TaskStatus | None = None,
) -> TaskPage:
    """A page of ExecuteST's tasks (those with `status`, if given): the recorded output once
    finished, else the ledger's."""
    runs.require_run(conn, run_id=run_id)
    recorded = runs.read_task_page(
        conn, run_id=run_id, step_id=StepId.EXECUTE, offset=offset, limit=limit, status=status
    )
    if recorded is not None:
        tasks, total = recorded
        return TaskPage(runId=run_id, total=total, offset=offset, limit=limit, tasks=tasks)
    max_attempts = settings.queues.task_max_attempts
    if status is None:
        pending = run_tasks.list_pending_views(conn, run_id=run_id, offset=offset, limit=limit)
        total = run_tasks.count_tasks(conn, run_id=run_id)
    else:
        pending = run_tasks.list_views_with_status(
            conn,
            run_id=run_id,
            step_id=StepId.EXECUTE,
            status=status,
            max_attempts=max_attempts,
            offset=offset,
            limit=limit,
        )
        counts = run_tasks.count_by_status(
            conn, run_id=run_id, step_id=StepId.EXECUTE, max_attempts=max_attempts
        )
        total = counts[status]
    views = executions.with_latest_attempts(
        conn, run_id=run_id, views=pending, max_attempts=max_attempts
    )
    return TaskPage(
        runId=run_id,
        total=total,
        offset=offset,
        limit=limit,
        tasks=[view.model_dump() for view in views],
    )


def _stuck_queue_hint(conn: sa.Connection, *, app_version: str, settings: Settings) -> str | None:
    rows = workers.list_workers(conn, ttl_seconds=settings.queues.heartbeat_ttl_seconds)
    return app_version_gap(rows, app_version)


def worker_view(row: workers.WorkerRow) -> WorkerView:
    return WorkerView(
        executorId=row.executor_id,
        appVersion=row.app_version,
        pid=row.pid,
        hostname=row.hostname,
        startedAt=iso(row.started_at) or "",
        heartbeatAt=iso(row.heartbeat_at) or "",
        alive=row.alive,
    )


def app_version_gap(rows: list[workers.WorkerRow], app_version: str) -> str | None:
    """Why work of `app_version` cannot run now, or None when a live worker runs it."""
    live = {row.app_version for row in rows if row.alive}
    if app_version in live:
        return None
    running = ", ".join(sorted(live)) or "none"
    return (
        f"no live worker runs app version {app_version!r} (live workers run: {running});"
        f" start a worker with DBOS__APPVERSION={app_version}"
    )


def list_event_views(conn: sa.Connection, *, run_id: str, after_seq: int = 0) -> list[RunEventView]:
    return [
        RunEventView(
            seq=event.seq,
            at=event.at.isoformat(),
            type=event.type,
            status=RunStatus(event.status),
            stepId=event.step_id,
            detail=event.detail,
        )
        for event in runs.list_events(conn, run_id=run_id, after_seq=after_seq)
    ]


def visible_run_view(
    conn: sa.Connection, principal: Principal, *, run_id: str, settings: Settings
) -> RunView:
    """GET /runs/{id}: the RunView with identity, if `principal` may see the run (else 404)."""
    run = service.require_visible_run(conn, principal, run_id=run_id)
    return with_identity(conn, build_run_view(conn, run_id=run_id, settings=settings), run)


def with_identity(conn: sa.Connection, view: RunView, run: runs.RunRow) -> RunView:
    """The RunView with who started the run and the gate's approvals so far and needed."""
    starter = approvals.read_starter(conn, run_id=run.id)
    started_by = PrincipalRef(keyId=starter.key_id, name=starter.name) if starter.name else None
    progress = None
    if run.plan_sha256 is not None and run.tasks_sha256 is not None:
        recipe = recipes.read_recipe(conn, name=run.recipe_name)
        votes = approvals.list_votes(
            conn, run_id=run.id, plan_sha256=run.plan_sha256, tasks_sha256=run.tasks_sha256
        )
        progress = ApprovalProgress(
            count=len(votes),
            needed=recipe.required_approvals if recipe else 1,
            approvers=[
                ApprovalVote(
                    principal=PrincipalRef(
                        keyId=None if vote.principal == ANONYMOUS_ID else vote.principal,
                        name=vote.key_name or vote.principal,
                    ),
                    approvedBy=vote.approved_by,
                    at=iso(vote.decided_at) or "",
                )
                for vote in votes
            ],
        )
    return view.model_copy(update={"startedBy": started_by, "approvals": progress})
