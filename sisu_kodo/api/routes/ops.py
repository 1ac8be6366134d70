"""Routes of the ops API: the run list and counts, step attempts, queues, workers, bulk.

Included before `routes.runs`, so `/runs/counts` and `/runs/bulk/...` are never read as
`/runs/{run_id}`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, status

from sisu_kodo.api import ops
from sisu_kodo.api.bodies import validated
from sisu_kodo.api.deps import OperatorDep, ReaderDep, StateDep
from sisu_kodo.api.errors import error_responses
from sisu_kodo.api.paths import IdPath
from sisu_kodo.contracts.ops import (
    RUN_PAGE_MAX,
    TEXT_PATTERN,
    BulkRequest,
    BulkResult,
    QueueBoard,
    RunCounts,
    RunPage,
    RunQuery,
    RunSteps,
    WorkerBoard,
)
from sisu_kodo.contracts.runs import RunStatus

router = APIRouter(tags=["ops"])

TEXT = Query(max_length=200, pattern=TEXT_PATTERN)


def run_query(
    status: Annotated[list[RunStatus] | None, Query()] = None,
    tenant: Annotated[str | None, TEXT] = None,
    recipe: Annotated[str | None, TEXT] = None,
    q: Annotated[str | None, Query(min_length=1, max_length=200, pattern=TEXT_PATTERN)] = None,
    createdAfter: datetime | None = None,
    createdBefore: datetime | None = None,
    cursor: Annotated[str | None, Query(max_length=400, pattern=r"^[A-Za-z0-9_-]+$")] = None,
    limit: Annotated[int, Query(ge=1, le=RUN_PAGE_MAX)] = 50,
    order: Literal["newest", "oldest"] = "newest",
) -> RunQuery:
    """The run filter from the query string (`status` may repeat)."""
    fields = {
        "status": status or [],
        "tenant": tenant,
        "recipe": recipe,
        "q": q,
        "created_after": createdAfter,
        "created_before": createdBefore,
        "cursor": cursor,
        "limit": limit,
        "oldest_first": order == "oldest",
    }
    return validated(RunQuery, fields, at="query", what="invalid run filter")


QueryDep = Annotated[RunQuery, Depends(run_query)]


@router.get("/runs", response_model=RunPage, responses=error_responses(400, 401, 403))
def list_runs(query: QueryDep, state: StateDep, caller: ReaderDep) -> RunPage:
    """Runs of the key's tenants, newest first (`order=oldest` for the oldest), a page at
    a time: `cursor` is the previous page's `nextCursor`."""
    with state.engine.connect() as conn:
        return ops.list_runs(conn, caller.principal, query, state.settings)


@router.get("/runs/counts", response_model=RunCounts, responses=error_responses(400, 401, 403))
def count_runs(query: QueryDep, state: StateDep, caller: ReaderDep) -> RunCounts:
    """Runs per status for the same filter as GET /runs."""
    with state.engine.connect() as conn:
        return ops.count_runs(conn, caller.principal, query)


@router.post(
    "/runs/bulk/cancel",
    status_code=status.HTTP_200_OK,
    responses=error_responses(400, 401, 403),
)
def bulk_cancel(body: BulkRequest, state: StateDep, caller: OperatorDep) -> BulkResult:
    """Cancel the runs the filter matches (at most `limit`); `dryRun` (the default) only
    counts them. Each canceled run is audited; each refusal is in `outcomes`."""
    return ops.bulk_cancel(state, caller, body)


@router.post(
    "/runs/bulk/retry",
    status_code=status.HTTP_200_OK,
    responses=error_responses(400, 401, 403),
)
def bulk_retry(body: BulkRequest, state: StateDep, caller: OperatorDep) -> BulkResult:
    """Retry the runs the filter matches (at most `limit`); `dryRun` (the default) only
    counts them. Each retried run is audited; each refusal is in `outcomes`."""
    return ops.bulk_retry(state, caller, body)


@router.get(
    "/runs/{run_id}/steps", response_model=RunSteps, responses=error_responses(400, 401, 403, 404)
)
def list_steps(run_id: IdPath, state: StateDep, caller: ReaderDep) -> RunSteps:
    """Every attempt of every step, with start, finish and duration."""
    with state.engine.connect() as conn:
        return ops.run_steps(conn, caller.principal, run_id)


@router.get("/queues", response_model=QueueBoard, responses=error_responses(401, 403))
def queues(state: StateDep, caller: ReaderDep) -> QueueBoard:
    """Per queue and partition (the key's tenants): enqueued, running, finished in the
    last 5 and 60 minutes, and the partition's concurrency limit."""
    with state.system.connect() as conn:
        return ops.queue_board(conn, state.settings, caller.principal)


@router.get("/workers", response_model=WorkerBoard, responses=error_responses(401, 403))
def list_workers(state: StateDep, caller: ReaderDep) -> WorkerBoard:
    """Live and dead workers: executor id, app version, host, pid, heartbeat age, and the
    runs and tasks each holds."""
    with state.engine.connect() as conn, state.system.connect() as system:
        return ops.worker_board(conn, state.settings, system)
