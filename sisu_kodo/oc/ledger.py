"""The ledger planner: every planner call, in every mode, is one `app.opencode_calls` row.

CompileST is an ordinary DBOS step, so it is at-least-once: a worker killed after the
model answered but before DBOS checkpointed the step runs it again. The row, written as
soon as the answer is known, turns that second run into a read instead of a second
(billed, possibly different) model call.
"""

from __future__ import annotations

import logging
import time

import sqlalchemy as sa

from sisu_kodo.contracts.plans import Plan
from sisu_kodo.contracts.runs import StepId
from sisu_kodo.db import opencode_calls
from sisu_kodo.db.opencode_calls import CallRow
from sisu_kodo.oc.port import (
    Answerer,
    CompileRequest,
    PlannerError,
    PlannerFailure,
    PlanResult,
)

log = logging.getLogger(__name__)


class LedgerPlanner:
    """Wraps a planner adapter; looks the attempt up first, records it before returning."""

    def __init__(self, inner: Answerer, engine: sa.Engine, *, step_id: str = StepId.COMPILE):
        self.mode = inner.mode
        self._inner = inner
        self._engine = engine
        self._step_id = str(step_id)

    def compile(self, request: CompileRequest) -> PlanResult:
        with self._engine.connect() as conn:
            recorded = opencode_calls.read_call(
                conn, run_id=request.runId, step_id=self._step_id, attempt=request.attempt
            )
        if recorded is not None:
            log.info(
                "run %s %s attempt %d: reusing recorded planner call %d (%s), not asking again",
                request.runId,
                self._step_id,
                request.attempt,
                recorded.id,
                recorded.source,
            )
            return _result(recorded)
        started = time.monotonic()
        answer = self._inner.answer(request)
        duration_ms = round((time.monotonic() - started) * 1000)
        with self._engine.begin() as conn:
            row = opencode_calls.record_call(
                conn,
                run_id=request.runId,
                step_id=self._step_id,
                attempt=request.attempt,
                mode=self.mode,
                source=answer.source,
                agent=answer.agent,
                schema_hash=answer.schemaHash,
                fixture_key=answer.fixtureKey,
                prompt=answer.prompt,
                prompt_version=answer.promptVersion,
                reply=answer.reply,
                plan=answer.plan.model_dump() if answer.plan is not None else None,
                detail=answer.detail,
                duration_ms=duration_ms,
                tokens=answer.tokens,
                error_code=answer.errorCode.value if answer.errorCode else None,
                error=answer.error,
            )
        return _result(row)


def _result(row: CallRow) -> PlanResult:
    """The step's answer from a ledger row: the same whether just written or reused."""
    if row.plan is None:
        failure = PlannerFailure(row.error_code or PlannerFailure.SERVER_ERROR.value)
        raise PlannerError(
            row.error or "OpenCode failed", {"failure": failure.value, "callId": str(row.id)}
        )
    return PlanResult(
        plan=Plan.model_validate(row.plan), source=row.source, callId=str(row.id), detail=row.detail
    )
