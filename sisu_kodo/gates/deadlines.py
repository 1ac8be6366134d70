"""Approval deadlines: how long a gate stays open, its warning, and its fail-safe close.

Deadlines are rows (app.gate_deadlines), not timers in a process: every worker's gate
sweep looks for due ones each SISU_GATE_SWEEP_SECONDS and handles each in one
transaction that locks the run row, then rechecks the deadline under its lock (the lock
order of the API's approvals too), so a deadline survives any crash or restart, fires
once across workers and races an answer safely, and is version-free: a gate opened
under one app version expires (or is approved and executes) under the next.
"""

from __future__ import annotations

import logging
from typing import Any

import sqlalchemy as sa

from sisu_kodo.contracts.runs import NextAction, RunStatus
from sisu_kodo.db import gates, runs
from sisu_kodo.db.recipes import RecipeRow
from sisu_kodo.errors import InvalidRequestError
from sisu_kodo.worker.periodic import Periodic

log = logging.getLogger(__name__)

APPROVAL_EXPIRED = "approval_expired"
# The decider recorded when nobody answered in time.
EXPIRY_DECIDER = "sisu (approval deadline)"
MAX_TTL_SECONDS = 30 * 24 * 3600
TTL_CONSTRAINT = "approvalTtlSeconds"


def check_ttl(constraints: dict[str, Any]) -> None:
    """Refuse an intent's approvalTtlSeconds that is not a whole number of seconds in range.

    Raises:
        InvalidRequestError: the constraint is there but not an int in 1..MAX_TTL_SECONDS.
    """
    value = constraints.get(TTL_CONSTRAINT)
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_TTL_SECONDS:
        raise InvalidRequestError(
            f"constraints.{TTL_CONSTRAINT} must be an integer from 1 to {MAX_TTL_SECONDS}",
            [{"path": f"constraints.{TTL_CONSTRAINT}", "message": "not a valid deadline"}],
        )


def approval_ttl(constraints: dict[str, Any], recipe: RecipeRow, default: int | None) -> int | None:
    """The gate's time in seconds: the intent's, else the recipe's, else the default."""
    value = constraints.get(TTL_CONSTRAINT)
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    return recipe.approval_ttl_seconds or default


def warn_due(engine: sa.Engine) -> int:
    """Record gate.expiring on every open gate past its warning time; returns how many."""
    warned = 0
    for run_id in _due(engine, "warning"):
        with engine.begin() as conn:
            run = runs.require_run(conn, run_id=run_id, for_update=True)
            deadline = gates.lock_if_due(conn, run_id=run_id, due="warning")
            if deadline is None:
                continue
            gates.mark_warned(conn, run_id=run_id)
            if not _waiting(run):
                continue
            runs.note_event(
                conn,
                run,
                type="gate.expiring",
                detail={
                    "expiresAt": deadline.expires_at.isoformat(),
                    "ttlSeconds": deadline.ttl_seconds,
                },
            )
            warned += 1
    return warned


def expire_due(engine: sa.Engine) -> int:
    """Close every open gate past its deadline as a rejection (approval_expired), never as
    an approval; gates answered meanwhile are just closed. Returns how many expired."""
    expired = 0
    for run_id in _due(engine, "expiry"):
        with engine.begin() as conn:
            run = runs.require_run(conn, run_id=run_id, for_update=True)
            deadline = gates.lock_if_due(conn, run_id=run_id, due="expiry")
            if deadline is None:
                continue
            if not _waiting(run):
                gates.close_deadline(conn, run_id=run_id, closed_as="answered")
                continue
            _reject_as_expired(conn, run, deadline)
            gates.close_deadline(conn, run_id=run_id, closed_as="expired")
            expired += 1
    return expired


def _due(engine: sa.Engine, due: str) -> list[str]:
    with engine.connect() as conn:
        return gates.list_due(conn, due=due)


def _waiting(run: runs.RunRow) -> bool:
    return run.status is RunStatus.WAITING_INPUT and run.next_action in (
        NextAction.APPROVE_PLAN,
        NextAction.APPROVE_CANARY,
    )


def _reject_as_expired(conn: sa.Connection, run: runs.RunRow, deadline: gates.DeadlineRow) -> None:
    assert run.plan_sha256 is not None and run.tasks_sha256 is not None
    at = deadline.expires_at.isoformat()
    runs.record_decision(
        conn,
        run_id=run.id,
        decision="rejected",
        decided_by=EXPIRY_DECIDER,
        notes=APPROVAL_EXPIRED,
        plan_sha256=run.plan_sha256,
        tasks_sha256=run.tasks_sha256,
        overrule=True,  # a canary gate: its approval let only the canary run
    )
    runs.transition(
        conn,
        run_id=run.id,
        status=RunStatus.FAILED,
        event="plan.rejected",
        step_id=run.last_step,
        detail={"rejectedBy": EXPIRY_DECIDER, "reason": APPROVAL_EXPIRED, "expiresAt": at},
        allowed_from=frozenset({RunStatus.WAITING_INPUT}),
        error=f"plan rejected: {APPROVAL_EXPIRED} (nobody answered the gate by {at})",
    )


class GateSweep(Periodic):
    """A worker's gate sweep: warnings first, so a warning due with its deadline (a long
    outage of every worker) is still recorded before the gate closes."""

    def __init__(self, engine: sa.Engine, *, period: float) -> None:
        super().__init__("sisu-gate-sweep", lambda: self.sweep(engine), period=period)

    @staticmethod
    def sweep(engine: sa.Engine) -> tuple[int, int]:
        return warn_due(engine), expire_due(engine)
