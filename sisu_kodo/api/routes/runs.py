"""Routes: /runs."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request, status
from fastapi.concurrency import run_in_threadpool
from pydantic import ValidationError
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
from sisu_kodo.contracts.plans import MAX_PLAN_TASKS
from sisu_kodo.contracts.runs import (
    Accepted,
    ApprovePlan,
    RejectPlan,
    RetryAccepted,
    RunEventIn,
    RunEventView,
    RunStatus,
    RunView,
    TaskPage,
)
from sisu_kodo.contracts.text import IdPath
from sisu_kodo.errors import IllegalStateError, InvalidRequestError

router = APIRouter(prefix="/runs", tags=["runs"])

STREAM_POLL_SECONDS = 0.25


@router.get("/{run_id}", response_model=RunView, responses=error_responses(401, 403, 404))
def get_run(run_id: IdPath, state: StateDep, caller: ReaderDep) -> RunView:
    """The RunView: status, steps with outputs, artifacts, who started and approved it."""
    with state.engine.connect() as conn:
        run = service.require_visible_run(conn, caller.principal, run_id=run_id)
        view = views.build_run_view(conn, run_id=run_id, settings=state.settings)
        return views.with_identity(conn, view, run)


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
) -> TaskPage:
    """ExecuteST's tasks, a page at a time (the RunView shows only the first ones)."""
    with state.engine.connect() as conn:
        service.require_visible_run(conn, caller.principal, run_id=run_id)
        return views.task_page(
            conn, run_id=run_id, settings=state.settings, offset=offset, limit=limit
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
    "/{run_id}/retry",
    status_code=status.HTTP_202_ACCEPTED,
    responses=error_responses(401, 403, 404, 409),
)
def retry_run(run_id: IdPath, state: StateDep, caller: OperatorDep) -> RetryAccepted:
    """Resume a failed run from the failed step: same runId, succeeded tasks kept."""
    with audited_unit(state, caller, status=202) as unit:
        return service.retry_run(unit, run_id=run_id, principal=caller.principal)


@router.post(
    "/{run_id}/cancel",
    status_code=status.HTTP_202_ACCEPTED,
    responses=error_responses(401, 403, 404, 409),
)
def cancel_run(run_id: IdPath, state: StateDep, caller: OperatorDep) -> Accepted:
    """Stop the run and its in-flight tasks; status becomes canceled."""
    with audited_unit(state, caller, status=202) as unit:
        return service.cancel_run(unit, run_id=run_id, principal=caller.principal)


@router.post(
    "/{run_id}/events",
    status_code=status.HTTP_202_ACCEPTED,
    responses=error_responses(400, 401, 403, 404, 409),
)
def post_event(run_id: IdPath, body: RunEventIn, state: StateDep, caller: DeciderDep) -> Accepted:
    """A human's answer at the gate: `approve-plan` or `reject-plan`."""
    with audited_unit(state, caller, status=202) as unit:
        run = service.require_visible_run(unit.conn, caller.principal, run_id=run_id)
        if run.status is not RunStatus.WAITING_INPUT:
            raise IllegalStateError(
                f"run {run_id} is {run.status.value}; events are accepted only while"
                " it is waiting_input",
                {"runId": run_id, "status": run.status.value},
            )
        if body.type == "approve-plan":
            return service.approve_plan(
                unit,
                run_id=run_id,
                body=_payload(ApprovePlan, body.payload),
                caller=caller,
                blobs=state.blobs,
            )
        return service.reject_plan(
            unit.conn, run_id=run_id, body=_payload(RejectPlan, body.payload), caller=caller
        )


def _payload(model: type[Any], payload: dict[str, Any]) -> Any:
    try:
        return model.model_validate(payload)
    except ValidationError as exc:
        problems = [
            {"path": ".".join(["payload", *map(str, e["loc"])]), "message": e["msg"]}
            for e in exc.errors()
        ]
        raise InvalidRequestError("invalid event payload", problems) from exc


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
    return EventSourceResponse(_stream(request, state, caller, run.id, last_event_id))


async def _stream(
    request: Request, state: ApiState, caller: Caller, run_id: str, after: int
) -> AsyncIterator[dict[str, str]]:
    last_seq = after
    while not await request.is_disconnected():
        events, terminal = await run_in_threadpool(_read_events, state, caller, run_id, last_seq)
        for event in events:
            last_seq = event.seq
            yield {"event": event.type, "id": str(event.seq), "data": event.model_dump_json()}
        if terminal and not events:
            return
        await asyncio.sleep(STREAM_POLL_SECONDS)


def _read_events(
    state: ApiState, caller: Caller, run_id: IdPath, after: int
) -> tuple[list[RunEventView], bool]:
    with state.engine.connect() as conn:
        run = service.require_visible_run(conn, caller.principal, run_id=run_id)
        return views.list_event_views(conn, run_id=run_id, after_seq=after), run.status.terminal
