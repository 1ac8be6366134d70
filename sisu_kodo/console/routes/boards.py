"""The boards: runs (filters, counts, live statuses, bulk cancel and retry), approvals
(the gate's inbox, oldest first) and queues (load, workers, warnings)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import sqlalchemy as sa
from fastapi import APIRouter, Form, Request
from fastapi.responses import Response
from starlette.datastructures import ImmutableMultiDict, QueryParams

from sisu_kodo.api import ops, service, views
from sisu_kodo.api.bodies import validated
from sisu_kodo.auth import Principal
from sisu_kodo.console.access import FormDep, OperatorDep, ReaderDep, Visitor, runtime_of
from sisu_kodo.console.nav import nav_of
from sisu_kodo.console.render import html
from sisu_kodo.contracts.ops import (
    BULK_MAX,
    BulkRequest,
    BulkResult,
    RunQuery,
    WorkerBoard,
)
from sisu_kodo.contracts.runs import CompileOutput, RunStatus, StepId
from sisu_kodo.db import runs, workers
from sisu_kodo.errors import NotFoundError

router = APIRouter()

RUNS_PER_PAGE = 50
FILTERS = ("status", "tenant", "recipe", "q")
Operation = Literal["cancel", "retry"]
Params = QueryParams | ImmutableMultiDict[str, Any]


def run_query(params: Params, **extra: Any) -> RunQuery:
    """The runs filter of a page's query string or a bulk form (blank fields mean any),
    checked as GET /runs checks it."""
    fields: dict[str, Any] = {
        name: value.strip()
        for name in (*FILTERS[1:], "cursor")
        if isinstance(value := params.get(name), str) and value.strip()
    }
    status = params.get("status")
    fields["status"] = [status] if isinstance(status, str) and status else []
    return validated(
        RunQuery, {"limit": RUNS_PER_PAGE, **fields, **extra}, at="query", what="invalid filter"
    )


def _filter_values(query: RunQuery) -> dict[str, str]:
    return {
        "status": query.status[0].value if query.status else "",
        "tenant": query.tenant or "",
        "recipe": query.recipe or "",
        "q": query.q or "",
    }


def _runs_context(
    conn: sa.Connection, principal: Principal, query: RunQuery, request: Request
) -> dict[str, Any]:
    settings = runtime_of(request).state().settings
    every_status = query.model_copy(update={"status": [], "cursor": None})
    counts = ops.count_runs(conn, principal, every_status)
    matching = (
        sum(counts.statuses[status] for status in query.status) if query.status else counts.total
    )
    return {
        "page": ops.list_runs(conn, principal, query, settings),
        "counts": counts,
        "matching": matching,
        "filters": _filter_values(query),
        "query_string": str(request.query_params),
    }


@router.get("/runs")
def runs_page(request: Request, visitor: ReaderDep) -> Response:
    """GET /runs and GET /runs/counts as a page: newest first, 50 a page."""
    return _runs(request, visitor, "runs.html")


@router.get("/runs/statuses")
def runs_statuses(request: Request, visitor: ReaderDep) -> Response:
    """The same page's statuses, counts and badge, swapped in place (rows keep their ticks)."""
    return _runs(request, visitor, "_runs_statuses.html")


def _runs(request: Request, visitor: Visitor, template: str) -> Response:
    query = run_query(request.query_params)
    state = runtime_of(request).state()
    with state.engine.connect() as conn:
        context = _runs_context(conn, visitor.principal, query, request)
        nav = nav_of(conn, visitor.principal, "runs")
    return html(request, visitor, template, nav=nav, statuses=list(RunStatus), **context)


def _bulk_request(form: Params, *, dry_run: bool) -> BulkRequest:
    query = run_query(form).model_dump(exclude={"cursor", "limit"})
    return BulkRequest.model_validate({**query, "limit": BULK_MAX, "dry_run": dry_run})


def _picked(form: Params) -> list[str]:
    values = form.getlist("run") if isinstance(form, ImmutableMultiDict) else []
    return sorted({str(value) for value in values})[:BULK_MAX]


def _preview(
    request: Request, form: Params, operation: Operation, every: bool, visitor: Visitor
) -> BulkResult:
    """What the action would touch, by the very dry run of POST /runs/bulk/{operation}."""
    state = runtime_of(request).state()
    if every:
        bulk = ops.bulk_cancel if operation == "cancel" else ops.bulk_retry
        return bulk(state, visitor.caller, _bulk_request(form, dry_run=True))
    picked = _picked(form)
    with state.engine.connect() as conn:
        visible = [run_id for run_id in picked if _visible(conn, visitor.principal, run_id)]
    return BulkResult(
        dryRun=True,
        matched=len(visible),
        firstIds=visible[:20],
        acted=0,
        succeeded=0,
        failed=0,
        outcomes=[],
    )


def _visible(conn: sa.Connection, principal: Principal, run_id: str) -> bool:
    try:
        service.require_visible_run(conn, principal, run_id=run_id)
    except NotFoundError:
        return False
    return True


@router.post("/runs/bulk")
def bulk_confirm(
    request: Request,
    visitor: OperatorDep,
    form: FormDep,
    operation: Annotated[Operation, Form()],
    scope: Annotated[Literal["picked", "every"], Form()] = "picked",
) -> Response:
    """Step one of a bulk action: the dry run's count, and a form to go ahead."""
    assert form is not None
    result = _preview(request, form, operation, scope == "every", visitor)
    state = runtime_of(request).state()
    with state.engine.connect() as conn:
        nav = nav_of(conn, visitor.principal, "runs")
    return html(
        request,
        visitor,
        "bulk.html",
        nav=nav,
        operation=operation,
        scope=scope,
        result=result,
        picked=_picked(form) if scope == "picked" else [],
        filters=_filter_values(run_query(form)),
        limit=BULK_MAX,
    )


@router.post("/runs/bulk/{operation}")
def bulk_act(
    operation: Operation,
    request: Request,
    visitor: OperatorDep,
    form: FormDep,
    scope: Annotated[Literal["picked", "every"], Form()] = "picked",
) -> Response:
    """Step two: the bulk action itself (each run audited), and its per-run outcomes."""
    assert form is not None
    state = runtime_of(request).state()
    if scope == "every":
        bulk = ops.bulk_cancel if operation == "cancel" else ops.bulk_retry
        result = bulk(state, visitor.caller, _bulk_request(form, dry_run=False))
    else:
        result = ops.act_on_runs(state, visitor.caller, _picked(form), operation)
    with state.engine.connect() as conn:
        nav = nav_of(conn, visitor.principal, "runs")
    return html(request, visitor, "bulk_done.html", nav=nav, operation=operation, result=result)


@router.get("/approvals")
def approvals_page(request: Request, visitor: ReaderDep) -> Response:
    """Runs at the approval gate, oldest first: the inbox of those who decide."""
    query = run_query(request.query_params, status=[RunStatus.WAITING_INPUT], oldest_first=True)
    state = runtime_of(request).state()
    with state.engine.connect() as conn:
        page = ops.list_runs(conn, visitor.principal, query, state.settings)
        plans = {item.runId: _plan_line(conn, item.runId) for item in page.items}
        nav = nav_of(conn, visitor.principal, "approvals")
    return html(request, visitor, "approvals.html", nav=nav, page=page, plans=plans)


def _plan_line(conn: sa.Connection, run_id: str) -> str:
    """The plan's first line: its first design line, else its goal (CompileST's output)."""
    output = runs.read_step_output(conn, run_id=run_id, step_id=StepId.COMPILE)
    if output is None:
        return ""
    plan = CompileOutput.model_validate(output)
    first = plan.design[0] if plan.design else plan.goal
    return first.splitlines()[0] if first else ""


@router.get("/queues")
def queues_page(request: Request, visitor: ReaderDep) -> Response:
    """GET /queues and GET /workers as a page, with what needs an operator's eye."""
    state = runtime_of(request).state()
    settings = state.settings
    with state.engine.connect() as conn, state.system.connect() as system:
        board = ops.queue_board(system, settings, visitor.principal)
        fleet = ops.worker_board(conn, settings, system)
        stuck = workers.queued_runs_without_worker(
            conn, ttl_seconds=settings.queues.heartbeat_ttl_seconds
        )
        rows = workers.list_workers(conn, ttl_seconds=settings.queues.heartbeat_ttl_seconds)
        nav = nav_of(conn, visitor.principal, "queues")
    warnings = _warnings(views.app_version_gap(rows, settings.topology.app_version), stuck, fleet)
    return html(
        request, visitor, "queues.html", nav=nav, board=board, fleet=fleet, warnings=warnings
    )


def _warnings(gap: str | None, stuck: dict[str, int], fleet: WorkerBoard) -> list[str]:
    found = [gap] if gap else []
    found += [
        f"{count} run(s) of app version {version!r} queued with no live worker to run them"
        for version, count in sorted(stuck.items())
    ]
    found += [
        f"worker {worker.executorId} is dead (heartbeat {worker.heartbeatAgeSeconds:.0f} s ago);"
        f" the survivors' recovery sweep takes over its {worker.runsInFlight} run(s) and"
        f" {worker.tasksInFlight} task(s)"
        for worker in fleet.workers
        if not worker.alive and (worker.runsInFlight or worker.tasksInFlight)
    ]
    return found
