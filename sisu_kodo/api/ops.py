"""The ops API's operations: the run list, counts, step attempts, queue and worker boards,
and bulk cancel and retry (each run through the single-run code of `service`).

Every read is scoped to the caller's tenants in SQL: another tenant's runs are not
filtered out afterwards, they are never read.
"""

from __future__ import annotations

import base64
import binascii
import logging
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from typing import Literal

import sqlalchemy as sa

from sisu_kodo.api import service
from sisu_kodo.api.deps import ApiState, Caller, audited_unit
from sisu_kodo.api.gateway import UnitOfWork
from sisu_kodo.api.views import iso, worker_view
from sisu_kodo.auth import ANONYMOUS, Principal
from sisu_kodo.config import Settings
from sisu_kodo.contracts.ops import (
    FIRST_IDS,
    BulkOutcome,
    BulkRequest,
    BulkResult,
    PartitionLoad,
    QueueBoard,
    QueueLoad,
    RunCounts,
    RunPage,
    RunQuery,
    RunSteps,
    RunSummary,
    StepAttempt,
    TaskCounts,
    WorkerBoard,
    WorkerLoad,
)
from sisu_kodo.contracts.runs import PrincipalRef, RunStatus, StepId
from sisu_kodo.db import queue_load, run_list, run_tasks, step_attempts, workers
from sisu_kodo.db.run_list import Position, RunListRow, Scope
from sisu_kodo.errors import AppError, InvalidRequestError
from sisu_kodo.workflows.names import INTENT_QUEUE, SBX_QUEUE

log = logging.getLogger(__name__)


def scope_of(principal: Principal) -> Scope:
    return Scope(None if principal.every_tenant else frozenset(principal.tenants))


# ---- the run list ------------------------------------------------------------------------


def encode_cursor(row: RunListRow) -> str:
    raw = f"{row.created_at.isoformat()}|{row.id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> Position | None:
    """The position a `nextCursor` names; a cursor we did not issue is a 400."""
    if cursor is None:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        at, run_id = raw.split("|", 1)
        moment = datetime.fromisoformat(at)
        if moment.tzinfo is None or not run_id or "\x00" in run_id:
            raise ValueError("not a position")
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise InvalidRequestError(
            "invalid cursor: pass the nextCursor of the previous page",
            [{"path": "cursor", "message": "not a cursor this API issued"}],
        ) from exc
    return moment, run_id


def list_runs(
    conn: sa.Connection, principal: Principal, query: RunQuery, settings: Settings
) -> RunPage:
    """A page of the runs `principal` may see, matching `query`, with task counts."""
    position = decode_cursor(query.cursor)
    # One more than a page tells whether there is a next one.
    rows = run_list.list_runs(
        conn, query=query, scope=scope_of(principal), position=position, limit=query.limit + 1
    )
    page, more = rows[: query.limit], len(rows) > query.limit
    counts = run_tasks.count_by_status_of_runs(
        conn,
        run_ids=[row.id for row in page],
        step_id=StepId.EXECUTE,
        max_attempts=settings.queues.task_max_attempts,
    )
    return RunPage(
        items=[_summary(row, counts.get(row.id)) for row in page],
        nextCursor=encode_cursor(page[-1]) if more else None,
    )


def _summary(row: RunListRow, counts: dict[str, int] | None) -> RunSummary:
    counts = counts or {}
    started = row.started_by_name
    approved = row.approved_by_name
    return RunSummary(
        runId=row.id,
        intentId=row.intent_id,
        goal=row.goal,
        tenant=row.queue_partition_key,
        recipe=row.recipe_name,
        status=row.status,
        lastStep=row.last_step,
        nextAction=row.next_action,
        error=row.error,
        retryCount=row.retry_count,
        tasks=TaskCounts(total=sum(counts.values()), **counts),
        createdAt=row.created_at.isoformat(),
        updatedAt=row.updated_at.isoformat(),
        startedBy=PrincipalRef(keyId=row.started_by_key_id, name=started) if started else None,
        approvedBy=PrincipalRef(keyId=row.approved_by_key_id, name=approved) if approved else None,
    )


def count_runs(conn: sa.Connection, principal: Principal, query: RunQuery) -> RunCounts:
    """Runs per status for `query` (its cursor and limit aside), in `principal`'s tenants."""
    decode_cursor(query.cursor)  # the same 400 as GET /runs for a bad cursor
    counts = run_list.count_runs(conn, query=query, scope=scope_of(principal))
    return RunCounts(
        statuses={status: counts.get(status, 0) for status in RunStatus},
        total=sum(counts.values()),
    )


def run_steps(conn: sa.Connection, principal: Principal, run_id: str) -> RunSteps:
    """Every attempt of the run's steps with its timings; 404 for another tenant's run."""
    service.require_visible_run(conn, principal, run_id=run_id)
    return RunSteps(
        runId=run_id,
        steps=[
            StepAttempt(
                stepId=row.step_id,
                phase=row.phase,
                attempt=row.attempt,
                startedAt=row.started_at.isoformat(),
                finishedAt=iso(row.finished_at),
                durationMs=row.duration_ms,
            )
            for row in step_attempts.list_step_attempts(conn, run_id=run_id)
        ],
    )


# ---- queues and workers ------------------------------------------------------------------


def queue_board(
    conn: sa.Connection, settings: Settings, principal: Principal = ANONYMOUS
) -> QueueBoard:
    """Per queue and partition (tenant) what waits, runs and lately finished; `conn` is on
    DBOS's system database (ApiState.system). Only `principal`'s partitions are shown."""
    limits = {
        INTENT_QUEUE: (
            settings.queues.intent_partition_concurrency,
            settings.queues.intent_worker_concurrency,
        ),
        SBX_QUEUE: (
            settings.queues.sbx_partition_concurrency,
            settings.queues.sbx_worker_concurrency,
        ),
    }
    rows = queue_load.partition_loads(conn, queues=list(limits), scope=scope_of(principal))
    queues = []
    for name, (per_partition, per_worker) in limits.items():
        partitions = [
            PartitionLoad(
                partition=row.partition,
                enqueued=row.enqueued,
                running=row.running,
                finished5m=row.finished_5m,
                finished60m=row.finished_60m,
                failed60m=row.failed_60m,
                concurrency=per_partition,
            )
            for row in rows
            if row.queue == name
        ]
        queues.append(
            QueueLoad(
                name=name,
                partitionConcurrency=per_partition,
                workerConcurrency=per_worker,
                enqueued=sum(p.enqueued for p in partitions),
                running=sum(p.running for p in partitions),
                partitions=partitions,
            )
        )
    return QueueBoard(queues=queues)


def worker_board(
    conn: sa.Connection, settings: Settings, system: sa.Connection | None = None
) -> WorkerBoard:
    """Live and dead workers with their heartbeat age and the workflows they hold;
    `system` is a connection on DBOS's system database when it is not `conn`'s."""
    rows = workers.list_workers(conn, ttl_seconds=settings.queues.heartbeat_ttl_seconds)
    loads = queue_load.in_flight_by_executor(system or conn, queues=[INTENT_QUEUE, SBX_QUEUE])
    views = [
        WorkerLoad(
            **worker_view(row).model_dump(),
            heartbeatAgeSeconds=round(row.heartbeat_age_seconds, 3),
            runsInFlight=loads.get(row.executor_id, {}).get(INTENT_QUEUE, 0),
            tasksInFlight=loads.get(row.executor_id, {}).get(SBX_QUEUE, 0),
        )
        for row in rows
    ]
    live = sum(1 for view in views if view.alive)
    return WorkerBoard(live=live, dead=len(views) - live, workers=views)


# ---- bulk actions ------------------------------------------------------------------------

RunAction = Callable[[UnitOfWork, str, Principal], RunStatus]


def _cancel_one(unit: UnitOfWork, run_id: str, principal: Principal) -> RunStatus:
    return service.cancel_run(unit, run_id=run_id, principal=principal).status


def _retry_one(unit: UnitOfWork, run_id: str, principal: Principal) -> RunStatus:
    return service.retry_run(unit, run_id=run_id, principal=principal).status


def bulk_cancel(state: ApiState, caller: Caller, request: BulkRequest) -> BulkResult:
    """Cancel the runs `request` matches (or, on a dry run, count them)."""
    return _bulk(state, caller, request, _cancel_one)


def bulk_retry(state: ApiState, caller: Caller, request: BulkRequest) -> BulkResult:
    """Retry the runs `request` matches (or, on a dry run, count them)."""
    return _bulk(state, caller, request, _retry_one)


def act_on_runs(
    state: ApiState, caller: Caller, run_ids: list[str], operation: Literal["cancel", "retry"]
) -> BulkResult:
    """Cancel or retry runs picked one by one (the console's ticked rows), each exactly as
    a bulk action acts on one run: its own transaction, audit row and outcome."""
    act = _cancel_one if operation == "cancel" else _retry_one
    outcomes = [_act_on(state, caller, run_id, act) for run_id in run_ids]
    succeeded = sum(1 for outcome in outcomes if outcome.ok)
    return BulkResult(
        dryRun=False,
        matched=len(run_ids),
        firstIds=run_ids[:FIRST_IDS],
        acted=len(outcomes),
        succeeded=succeeded,
        failed=len(outcomes) - succeeded,
        outcomes=outcomes,
    )


def _bulk(state: ApiState, caller: Caller, request: BulkRequest, act: RunAction) -> BulkResult:
    scope = scope_of(caller.principal)
    position = decode_cursor(request.cursor)
    with state.engine.connect() as conn:
        matched = sum(run_list.count_runs(conn, query=request, scope=scope).values())
        rows = run_list.list_runs(conn, query=request, scope=scope, position=position)
    ids = [row.id for row in rows]
    outcomes = [] if request.dry_run else [_act_on(state, caller, r, act) for r in ids]
    succeeded = sum(1 for outcome in outcomes if outcome.ok)
    return BulkResult(
        dryRun=request.dry_run,
        matched=matched,
        firstIds=ids[:FIRST_IDS],
        acted=len(outcomes),
        succeeded=succeeded,
        failed=len(outcomes) - succeeded,
        outcomes=outcomes,
    )


def _act_on(state: ApiState, caller: Caller, run_id: str, act: RunAction) -> BulkOutcome:
    """One run in its own transaction with its own audit row; a refusal is its outcome."""
    try:
        with audited_unit(state, replace(caller, target=run_id), status=202) as unit:
            status = act(unit, run_id, caller.principal)
    except AppError as refused:
        return BulkOutcome(runId=run_id, ok=False, code=refused.code, message=refused.message)
    except Exception:
        # One run's unexpected failure (say, DBOS refusing a cancel) must not hide the
        # outcomes of the others: it is reported with the correlation of the log line.
        log.exception("bulk action on run %s failed", run_id)
        return BulkOutcome(
            runId=run_id, ok=False, code=AppError.code, message="unexpected error; see the log"
        )
    return BulkOutcome(runId=run_id, ok=True, status=status)
