"""A run's page (header, plan card, gate, timeline, tasks), its live parts, a task's
page, artifact downloads, and the run's actions: approve, reject, retry, cancel."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Form, Header, Query, Request
from fastapi.responses import Response
from sse_starlette.sse import EventSourceResponse

from sisu_kodo.api import service, views
from sisu_kodo.api.deps import audited_unit
from sisu_kodo.api.paths import IdPath
from sisu_kodo.api.routes.runs import follow_events
from sisu_kodo.console import readers
from sisu_kodo.console.access import DeciderDep, OperatorDep, ReaderDep, Visitor, runtime_of
from sisu_kodo.console.nav import nav_of
from sisu_kodo.console.render import TEMPLATES, html, redirect
from sisu_kodo.contracts.plans import MAX_PLAN_TASKS
from sisu_kodo.contracts.runs import ApprovePlan, RejectPlan

router = APIRouter(prefix="/runs")

TASKS_PER_PAGE = 50
# htmx stops polling an element whose answer is 286: the run has ended.
STOP_POLLING = 286
Operation = Literal["retry", "cancel"]
OffsetQuery = Annotated[int, Query(ge=0, le=MAX_PLAN_TASKS)]


def _live_context(request: Request, visitor: Visitor, run_id: str, offset: int) -> dict[str, Any]:
    """The run's changing parts, read as GET /runs/{id} and GET /runs/{id}/tasks read them."""
    state = runtime_of(request).state()
    with state.engine.connect() as conn:
        run = views.visible_run_view(
            conn, visitor.principal, run_id=run_id, settings=state.settings
        )
        tasks = views.task_page(
            conn, run_id=run_id, settings=state.settings, offset=offset, limit=TASKS_PER_PAGE
        )
    return {
        "run": run,
        "progress": readers.progress_of(run),
        "plan_sha256": readers.plan_sha256(run),
        "retryable": run.status in service.RETRYABLE,
        "tasks": tasks,
        "offset": offset,
        "per_page": TASKS_PER_PAGE,
    }


@router.get("/{run_id}")
def run_page(
    run_id: IdPath, request: Request, visitor: ReaderDep, offset: OffsetQuery = 0
) -> Response:
    live = _live_context(request, visitor, run_id, offset)
    run = live["run"]
    state = runtime_of(request).state()
    with state.engine.connect() as conn:
        row = service.require_visible_run(conn, visitor.principal, run_id=run_id)
        may_decide = service.may_decide(conn, visitor.principal, row)
        card = readers.read_plan(conn, visitor.principal, run, blobs=state.blobs)
        events = views.list_event_views(conn, run_id=run_id)
        nav = nav_of(conn, visitor.principal, "runs")
    return html(
        request,
        visitor,
        "run.html",
        nav=nav,
        card=card,
        may_decide=may_decide,
        events=events,
        last_seq=events[-1].seq if events else 0,
        **live,
    )


@router.get("/{run_id}/live")
def run_live(
    run_id: IdPath, request: Request, visitor: ReaderDep, offset: OffsetQuery = 0
) -> Response:
    """The header, progress and task page, polled by the run page while the run is live."""
    live = _live_context(request, visitor, run_id, offset)
    status = STOP_POLLING if live["run"].status.terminal else 200
    response = html(request, visitor, "_run_live.html", status=status, **live)
    if status == STOP_POLLING:
        # The last answer still swaps in (htmx swaps a 286), then polling stops.
        response.headers["HX-Trigger"] = "run-ended"
    return response


@router.get("/{run_id}/timeline")
def run_timeline(
    run_id: IdPath,
    request: Request,
    visitor: ReaderDep,
    after: Annotated[int, Query(ge=0, lt=2**31)] = 0,
    last_event_id: Annotated[int, Header(ge=0, lt=2**31)] = 0,
) -> Response:
    """The timeline, live: the events stream of GET /runs/{id}/events as HTML items.

    The page asks for events after the last one it shows; a reconnecting EventSource
    resumes after the one its Last-Event-ID names.
    """
    state = runtime_of(request).state()
    with state.engine.connect() as conn:
        run = service.require_visible_run(conn, visitor.principal, run_id=run_id)
    template = TEMPLATES.get_template("_event.html")

    async def items() -> AsyncIterator[dict[str, str]]:
        async for event in follow_events(
            request, state, visitor.caller, run.id, max(after, last_event_id)
        ):
            yield {"event": "timeline", "id": str(event.seq), "data": template.render(event=event)}
        yield {"event": "end", "data": ""}  # the run has ended: the page closes the stream

    return EventSourceResponse(items())


@router.get("/{run_id}/tasks/{task_key}")
def task_page(run_id: IdPath, task_key: IdPath, request: Request, visitor: ReaderDep) -> Response:
    """One task: its latest state, and stdout, stderr and files of every attempt."""
    state = runtime_of(request).state()
    with state.engine.connect() as conn:
        detail = readers.task_detail(
            conn,
            visitor.principal,
            run_id=run_id,
            task_key=task_key,
            settings=state.settings,
            blobs=state.blobs,
        )
        nav = nav_of(conn, visitor.principal, "runs")
    return html(request, visitor, "task.html", nav=nav, run_id=run_id, detail=detail)


@router.get("/{run_id}/artifact")
def download_artifact(
    run_id: IdPath,
    request: Request,
    visitor: ReaderDep,
    uri: Annotated[str, Query(max_length=2000)],
) -> Response:
    """An artifact's bytes (as GET /artifacts/{uri} answers them), as a download."""
    state = runtime_of(request).state()
    with state.engine.connect() as conn:
        service.require_visible_run(conn, visitor.principal, run_id=run_id)
        found = service.read_visible_artifact(conn, visitor.principal, uri=uri, blobs=state.blobs)
    # A file's name comes from the task: keep only characters safe in a header.
    name = re.sub(r"[^A-Za-z0-9._-]", "_", uri.rsplit("/", 1)[-1]) or "artifact"
    return Response(
        found.content,
        media_type=found.meta.media_type,
        headers={
            "ETag": f'"{found.meta.sha256}"',
            "X-Content-SHA256": found.meta.sha256,
            "Content-Disposition": f'attachment; filename="{name}"',
        },
    )


@router.post("/{run_id}/approve")
def approve(
    run_id: IdPath,
    request: Request,
    visitor: DeciderDep,
    notes: Annotated[str, Form(max_length=10_000)] = "",
) -> Response:
    """POST /runs/{id}/approve-plan, from the console: approvedBy is the key's name."""
    state = runtime_of(request).state()
    body = ApprovePlan(approvedBy=visitor.principal.name, notes=notes.strip() or None)
    with audited_unit(state, visitor.caller, status=303) as unit:
        service.approve_plan(
            unit, run_id=run_id, body=body, caller=visitor.caller, blobs=state.blobs
        )
    return redirect(request, visitor, f"/console/runs/{run_id}")


@router.post("/{run_id}/reject")
def reject(
    run_id: IdPath,
    request: Request,
    visitor: DeciderDep,
    reason: Annotated[str, Form(max_length=10_000)] = "",
) -> Response:
    """A reject-plan event, from the console, with the reason the form gives."""
    state = runtime_of(request).state()
    body = RejectPlan(rejectedBy=visitor.principal.name, reason=reason.strip() or None)
    with audited_unit(state, visitor.caller, status=303) as unit:
        service.reject_plan(unit.conn, run_id=run_id, body=body, caller=visitor.caller)
    return redirect(request, visitor, f"/console/runs/{run_id}")


@router.get("/{run_id}/confirm/{operation}")
def confirm(
    run_id: IdPath, operation: Operation, request: Request, visitor: OperatorDep
) -> Response:
    """Retry or cancel asks first (a page, so it works without JavaScript too)."""
    state = runtime_of(request).state()
    with state.engine.connect() as conn:
        run = service.require_visible_run(conn, visitor.principal, run_id=run_id)
        nav = nav_of(conn, visitor.principal, "runs")
    return html(request, visitor, "confirm.html", nav=nav, run=run, operation=operation)


@router.post("/{run_id}/retry")
def retry(run_id: IdPath, request: Request, visitor: OperatorDep) -> Response:
    """POST /runs/{id}/retry, from the console."""
    state = runtime_of(request).state()
    with audited_unit(state, visitor.caller, status=303) as unit:
        service.retry_run(unit, run_id=run_id, principal=visitor.principal)
    return redirect(request, visitor, f"/console/runs/{run_id}")


@router.post("/{run_id}/cancel")
def cancel(run_id: IdPath, request: Request, visitor: OperatorDep) -> Response:
    """POST /runs/{id}/cancel, from the console."""
    state = runtime_of(request).state()
    with audited_unit(state, visitor.caller, status=303) as unit:
        service.cancel_run(unit, run_id=run_id, principal=visitor.principal)
    return redirect(request, visitor, f"/console/runs/{run_id}")
