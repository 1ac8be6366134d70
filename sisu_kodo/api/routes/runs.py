"""Routes: /runs."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Body, Header, Query, Request, status
from fastapi.concurrency import run_in_threadpool
from pydantic import TypeAdapter, ValidationError
from sse_starlette.sse import EventSourceResponse

from sisu_kodo.api import service, views
from sisu_kodo.api.deps import (
    ApiState,
    Caller,
    DeciderDep,
    OperatorDep,
    ReaderDep,
    StateDep,
    audited_unit,
)
from sisu_kodo.api.errors import error_responses
from sisu_kodo.api.paths import IdPath
from sisu_kodo.contracts.ops import TaskStatus
from sisu_kodo.contracts.plans import MAX_PLAN_TASKS
from sisu_kodo.contracts.runs import (
    RUN_EVENT_TYPES,
    Accepted,
    ApprovalExtended,
    ApproveEvent,
    ApprovePlan,
    CommentEvent,
    ExtendApproval,
    RejectEvent,
    RetryAccepted,
    RetryRun,
    RunEventIn,
    RunEventView,
    RunView,
    TaskPage,
)
from sisu_kodo.errors import InvalidRequestError

router = APIRouter(prefix="/runs", tags=["runs"])

STREAM_POLL_SECONDS = 0.25


@router.get("/{run_id}", response_model=RunView, responses=error_responses(401, 403, 404))
def get_run(run_id: IdPath, state: StateDep, caller: ReaderDep) -> RunView:
    """The RunView: status, steps with outputs, artifacts, who started and approved it."""
    with state.engine.connect() as conn:
        return views.visible_run_view(
            conn, caller.principal, run_id=run_id, settings=state.settings
        )


@router.get(
    "/{run_id}/tasks", response_model=TaskPage, responses=error_responses(400, 401, 403, 404)
)
def list_tasks(
    run_id: IdPath,
    state: StateDep,
    caller: ReaderDep,
    # No run has more than MAX_PLAN_TASKS tasks, and the page's bounds must fit the int
    # arithmetic of its SQL: a larger offset is a 400, not an overflow.
    offset: Annotated[int, Query(ge=0, le=MAX_PLAN_TASKS)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 500,
    status: TaskStatus | None = None,
) -> TaskPage:
    """ExecuteST's tasks, a page at a time (the RunView shows only the first ones);
    `status` keeps only the tasks whose latest attempt has it (`total` counts those)."""
    with state.engine.connect() as conn:
        service.require_visible_run(conn, caller.principal, run_id=run_id)
        return views.task_page(
            conn,
            run_id=run_id,
            settings=state.settings,
            offset=offset,
            limit=limit,
            status=status,
        )


@router.post(
    "/{run_id}/approve-plan",
    status_code=status.HTTP_202_ACCEPTED,
    responses=error_responses(400, 401, 403, 404, 409),
)
def approve_plan(
    run_id: IdPath, body: ApprovePlan, state: StateDep, caller: DeciderDep
) -> Accepted:
    """Approve the plan; the gate opens (the decided tasks fan out) at the recipe's
    requiredApprovals-th distinct approver. Only while the run waits for approval."""
    with audited_unit(state, caller, status=202) as unit:
        return service.approve_plan(
            unit, run_id=run_id, body=body, caller=caller, blobs=state.blobs
        )


@router.post(
    "/{run_id}/extend-approval",
    status_code=status.HTTP_202_ACCEPTED,
    responses=error_responses(400, 401, 403, 404, 409),
)
def extend_approval(
    run_id: IdPath, body: ExtendApproval, state: StateDep, caller: DeciderDep
) -> ApprovalExtended:
    """Move the open gate's deadline `seconds` later (audited, with its reason)."""
    with audited_unit(state, caller, status=202) as unit:
        return service.extend_approval(
            unit.conn,
            run_id=run_id,
            body=body,
            warn_share=state.settings.gates.approval_warn_share,
            caller=caller,
        )


@router.post(
    "/{run_id}/retry",
    status_code=status.HTTP_202_ACCEPTED,
    responses=error_responses(400, 401, 403, 404, 409),
)
def retry_run(
    run_id: IdPath, state: StateDep, caller: OperatorDep, body: RetryRun | None = None
) -> RetryAccepted:
    """Resume a failed run from the failed step: same runId, succeeded tasks kept; a run a
    budget stopped needs `{"sandboxMinutes": N}` raising it (409 budget_exhausted)."""
    with audited_unit(state, caller, status=202) as unit:
        return service.retry_run(
            unit, run_id=run_id, principal=caller.principal, body=body or RetryRun()
        )


@router.post(
    "/{run_id}/cancel",
    status_code=status.HTTP_202_ACCEPTED,
    responses=error_responses(401, 403, 404, 409),
)
def cancel_run(run_id: IdPath, state: StateDep, caller: OperatorDep) -> Accepted:
    """Stop the run and its in-flight tasks; status becomes canceled."""
    with audited_unit(state, caller, status=202) as unit:
        return service.cancel_run(unit, run_id=run_id, principal=caller.principal)


_EVENT_BODY = TypeAdapter(RunEventIn)


def _inline_refs(schema: Any, defs: dict[str, Any]) -> Any:
    """`schema` with every local `$ref` replaced by its definition (the models are not
    recursive), so the body's schema stands alone in the OpenAPI document."""
    if isinstance(schema, dict):
        ref = schema.get("$ref")
        if isinstance(ref, str):
            return _inline_refs(defs[ref.rsplit("/", 1)[-1]], defs)
        return {key: _inline_refs(value, defs) for key, value in schema.items() if key != "$defs"}
    if isinstance(schema, list):
        return [_inline_refs(item, defs) for item in schema]
    return schema


def _event_body_schema() -> dict[str, Any]:
    schema = _EVENT_BODY.json_schema()
    inlined: dict[str, Any] = _inline_refs(schema, schema.get("$defs", {}))
    return inlined


@router.post(
    "/{run_id}/events",
    status_code=status.HTTP_202_ACCEPTED,
    responses=error_responses(400, 401, 403, 404, 409),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": _event_body_schema()}},
        }
    },
)
def post_event(
    run_id: IdPath,
    state: StateDep,
    caller: DeciderDep,
    # Read as any JSON: the run's status is checked before the body (the manual's triage
    # matrix: any event to a run not waiting_input is 409 illegal_state).
    body: Annotated[Any, Body(include_in_schema=False)] = None,
) -> Accepted:
    """A human's answer at the gate (`approve-plan`, `reject-plan`) or a `comment` on the
    run's timeline; only while the run is waiting_input."""
    with audited_unit(state, caller, status=202) as unit:
        service.require_waiting(
            service.require_visible_run(unit.conn, caller.principal, run_id=run_id)
        )
        event = _parse_event(body)
        if isinstance(event, ApproveEvent):
            return service.approve_plan(
                unit, run_id=run_id, body=event.payload, caller=caller, blobs=state.blobs
            )
        if isinstance(event, RejectEvent):
            return service.reject_plan(unit.conn, run_id=run_id, body=event.payload, caller=caller)
        return service.comment(unit.conn, run_id=run_id, body=event.payload, caller=caller)


def _parse_event(body: Any) -> ApproveEvent | RejectEvent | CommentEvent:
    try:
        return _EVENT_BODY.validate_python(body)
    except ValidationError as exc:
        problems = [
            {"path": ".".join(map(str, e["loc"])) or "body", "message": e["msg"]}
            for e in exc.errors()
        ]
        accepted = ", ".join(RUN_EVENT_TYPES)
        raise InvalidRequestError(
            f"invalid event (accepted types: {accepted}): {problems[0]['message']}",
            problems,
        ) from exc


@router.get(
    "/{run_id}/events",
    response_model=list[RunEventView],
    responses={
        200: {"content": {"text/event-stream": {}}},
        **error_responses(400, 401, 403, 404),
    },
)
def list_events(
    run_id: IdPath,
    request: Request,
    state: StateDep,
    caller: ReaderDep,
    # The seq of the last event a reconnecting stream saw (run_events.seq is an int).
    last_event_id: Annotated[int, Header(ge=0, lt=2**31)] = 0,
) -> Any:
    """Phase transitions, oldest first; `Accept: text/event-stream` streams them live,
    after the event `Last-Event-ID` names."""
    with state.engine.connect() as conn:
        run = service.require_visible_run(conn, caller.principal, run_id=run_id)
        if "text/event-stream" not in request.headers.get("accept", ""):
            return views.list_event_views(conn, run_id=run_id)
    return EventSourceResponse(
        {"event": event.type, "id": str(event.seq), "data": event.model_dump_json()}
        async for event in follow_events(request, state, caller, run.id, last_event_id)
    )


async def follow_events(
    request: Request, state: ApiState, caller: Caller, run_id: str, after: int
) -> AsyncIterator[RunEventView]:
    """The run's events after seq `after` as they are written, until the run has ended
    and every event is out, or the client leaves (the JSON and the console streams)."""
    last_seq = after
    while not await request.is_disconnected():
        events, terminal = await run_in_threadpool(_read_events, state, caller, run_id, last_seq)
        for event in events:
            last_seq = event.seq
            yield event
        if terminal and not events:
            return
        await asyncio.sleep(STREAM_POLL_SECONDS)


def _read_events(
    state: ApiState, caller: Caller, run_id: IdPath, after: int
) -> tuple[list[RunEventView], bool]:
    with state.engine.connect() as conn:
        run = service.require_visible_run(conn, caller.principal, run_id=run_id)
        return views.list_event_views(conn, run_id=run_id, after_seq=after), run.status.terminal
