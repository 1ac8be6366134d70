"""Routes: /intents."""

from __future__ import annotations

from fastapi import APIRouter, status

from sisu_kodo.api import service
from sisu_kodo.api.deps import StateDep, SubmitterDep, audited_unit
from sisu_kodo.api.errors import error_responses
from sisu_kodo.api.paths import IdPath
from sisu_kodo.contracts.intents import IntentCreate, IntentCreated
from sisu_kodo.contracts.runs import RunStart, RunStarted

router = APIRouter(tags=["intents"])


@router.post(
    "/intents",
    status_code=status.HTTP_201_CREATED,
    response_model=IntentCreated,
    responses=error_responses(400, 401, 403),
)
def create_intent(body: IntentCreate, state: StateDep, caller: SubmitterDep) -> IntentCreated:
    """Record a goal; nothing runs until a run is started for it."""
    with audited_unit(state, caller, status=201) as unit:
        intent_id = service.create_intent(unit.conn, body, caller.principal)
        caller.target = intent_id
        return IntentCreated(intentId=intent_id)


@router.post(
    "/intents/{intent_id}/run",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=RunStarted,
    responses=error_responses(400, 401, 403, 404, 409),
)
def start_run(
    intent_id: IdPath, body: RunStart, state: StateDep, caller: SubmitterDep
) -> RunStarted:
    """Start (or, with the identical body, return) the intent's run."""
    with audited_unit(state, caller, status=202) as unit:
        started = service.start_run(
            unit,
            intent_id=intent_id,
            body=body,
            app_version=state.settings.topology.app_version,
            principal=caller.principal,
        )
        caller.target = started.runId  # the audit log is searched by run
        return started
