"""Started sandbox attempts (`app.sbx_attempts`): the row written before a worker waits for
an attempt's command, so a step that runs again after a crash re-attaches to it.

An attempt's outcome is its `app.sbx_runs` row; a started attempt without one is in flight
(or its worker died). Attempt numbers come from here and from `sbx_runs`, never from
DBOS's in-memory retry counter, which starts again at 0 after a crash.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB

from sisu_kodo.contracts.runs import TERMINAL_STATUSES, RunStatus
from sisu_kodo.errors import NotFoundError

_COLUMNS = (
    "a.run_id, a.task_key, a.attempt, a.attempt_offset, a.sandbox_ref, a.provider,"
    " a.executor_id, a.request, a.started_at"
)
# A started attempt with no outcome row yet.
_UNRECORDED = (
    "NOT EXISTS (SELECT 1 FROM app.sbx_runs r WHERE r.run_id = a.run_id"
    " AND r.step_id = a.step_id AND r.task_key = a.task_key AND r.attempt = a.attempt)"
)


@dataclass(frozen=True)
class StartedAttempt:
    run_id: str
    task_key: str
    attempt: int
    attempt_offset: int
    sandbox_ref: str
    provider: str
    executor_id: str
    request: dict[str, Any]
    started_at: datetime


def record_started(
    conn: sa.Connection,
    *,
    run_id: str,
    step_id: str,
    task_key: str,
    attempt: int,
    attempt_offset: int,
    sandbox_ref: str,
    provider: str,
    executor_id: str,
    request: dict[str, Any],
    finished: bool = False,
) -> None:
    """Record an attempt as started (idempotent: a second start of it changes nothing).

    `finished`: its outcome is written in the same transaction, so the attempt no longer
    waits for one (`outcome_at`); an attempt whose start failed has no started row yet
    and gets one here. One statement either way: it runs for every attempt.
    """
    conn.execute(
        sa.text(
            """
            INSERT INTO app.sbx_attempts (run_id, step_id, task_key, attempt, attempt_offset,
                                          sandbox_ref, provider, executor_id, request,
                                          outcome_at)
            VALUES (:run_id, :step_id, :task_key, :attempt, :attempt_offset,
                    :sandbox_ref, :provider, :executor_id, :request,
                    CASE WHEN :finished THEN clock_timestamp() END)
            ON CONFLICT (run_id, step_id, task_key, attempt) DO UPDATE
                SET outcome_at = EXCLUDED.outcome_at
                WHERE app.sbx_attempts.outcome_at IS NULL AND EXCLUDED.outcome_at IS NOT NULL
            """
        ).bindparams(sa.bindparam("request", type_=JSONB)),
        {
            "run_id": run_id,
            "step_id": step_id,
            "task_key": task_key,
            "attempt": attempt,
            "attempt_offset": attempt_offset,
            "sandbox_ref": sandbox_ref,
            "provider": provider,
            "executor_id": executor_id,
            "request": request,
            "finished": finished,
        },
    )


def adopt(
    conn: sa.Connection, *, run_id: str, step_id: str, task_key: str, attempt: int, executor_id: str
) -> None:
    """Make `executor_id` the waiter of an attempt it re-attached to (a takeover), so its
    cancel watcher is the one that stops it."""
    conn.execute(
        sa.text(
            "UPDATE app.sbx_attempts SET executor_id = :executor_id WHERE run_id = :run_id"
            " AND step_id = :step_id AND task_key = :task_key AND attempt = :attempt"
            " AND executor_id <> :executor_id"
        ),
        {
            "run_id": run_id,
            "step_id": step_id,
            "task_key": task_key,
            "attempt": attempt,
            "executor_id": executor_id,
        },
    )


@dataclass(frozen=True)
class TaskLedger:
    """What a task step reads before an attempt, in one round trip (see `task_ledger`)."""

    pending_attempt: int | None  # the latest started attempt above `after` with no outcome
    pending_ref: str | None
    latest_attempt: int | None  # the latest recorded outcome (any round)
    latest_err_code: str | None
    latest_offset: int | None
    last_attempt: int  # the highest attempt number started or recorded (0 for none)
    run_status: RunStatus


def task_ledger(
    conn: sa.Connection, *, run_id: str, step_id: str, task_key: str, after: int
) -> TaskLedger:
    """The task's started and recorded attempts and its run's status, in one statement:
    it runs for every attempt of every task, so its round trips are the fan-out's."""
    row = conn.execute(
        sa.text(
            f"""
            WITH pending AS (
                SELECT a.attempt, a.sandbox_ref FROM app.sbx_attempts a
                WHERE a.run_id = :run_id AND a.step_id = :step_id AND a.task_key = :task_key
                  AND a.attempt > :after AND {_UNRECORDED}
                ORDER BY a.attempt DESC LIMIT 1
            ), latest AS (
                SELECT attempt, err_code, attempt_offset FROM app.sbx_runs
                WHERE run_id = :run_id AND step_id = :step_id AND task_key = :task_key
                ORDER BY attempt DESC LIMIT 1
            )
            SELECT (SELECT attempt FROM pending), (SELECT sandbox_ref FROM pending),
                   (SELECT attempt FROM latest), (SELECT err_code FROM latest),
                   (SELECT attempt_offset FROM latest),
                   GREATEST(
                       (SELECT COALESCE(MAX(attempt), 0) FROM app.sbx_attempts
                        WHERE run_id = :run_id AND step_id = :step_id AND task_key = :task_key),
                       COALESCE((SELECT attempt FROM latest), 0)),
                   (SELECT status FROM app.runs WHERE id = :run_id)
            """
        ),
        {"run_id": run_id, "step_id": step_id, "task_key": task_key, "after": after},
    ).one()
    if row[-1] is None:
        raise NotFoundError(f"run {run_id} not found", {"runId": run_id})
    pending_attempt, pending_ref, latest_attempt, latest_code, latest_offset, last, status = row
    return TaskLedger(
        pending_attempt=pending_attempt,
        pending_ref=pending_ref,
        latest_attempt=latest_attempt,
        latest_err_code=latest_code,
        latest_offset=latest_offset,
        last_attempt=last,
        run_status=RunStatus(status),
    )


def lock_run_and_notify(conn: sa.Connection, *, run_id: str, channel: str) -> RunStatus:
    """The run's status, held (FOR SHARE) until the transaction ends: a cancel, which
    updates the row, commits either before this read or after the caller's writes. The
    same statement notifies `channel` with the run id, delivered at commit (it rides with
    every recorded attempt; see db/task_notices.py)."""
    return RunStatus(
        conn.execute(
            sa.text(
                "SELECT status, pg_notify(:channel, id) FROM app.runs WHERE id = :id FOR SHARE"
            ),
            {"id": run_id, "channel": channel},
        ).scalar_one()
    )


def unrecorded_in_ended_runs(
    conn: sa.Connection, *, step_id: str, executor_id: str
) -> list[StartedAttempt]:
    """Attempts `executor_id` waits for (or left when it died) whose run has ended."""
    rows = conn.execute(
        sa.text(
            f"SELECT {_COLUMNS} FROM app.sbx_attempts a JOIN app.runs ON runs.id = a.run_id"
            " WHERE a.executor_id = :executor_id AND a.outcome_at IS NULL"
            " AND a.step_id = :step_id"
            f" AND runs.status = ANY(:ended) AND {_UNRECORDED}"
            " ORDER BY a.run_id, a.task_key, a.attempt"
        ),
        {
            "executor_id": executor_id,
            "step_id": step_id,
            "ended": [status.value for status in TERMINAL_STATUSES],
        },
    ).all()
    return [StartedAttempt(*row) for row in rows]


@dataclass(frozen=True)
class AttemptAccount:
    """A run's attempts as the ledger counts them (the oracle's inputs)."""

    started: int
    recorded: int
    unrecorded: int  # started, no outcome
    unstarted: int  # an outcome with no started row
    misnumbered: int  # tasks whose attempt numbers are not 1..n, each once


def account(conn: sa.Connection, *, run_id: str) -> AttemptAccount:
    started, recorded, unrecorded, unstarted, misnumbered = conn.execute(
        sa.text(
            f"""
            SELECT
              (SELECT COUNT(*) FROM app.sbx_attempts WHERE run_id = :r),
              (SELECT COUNT(*) FROM app.sbx_runs WHERE run_id = :r),
              (SELECT COUNT(*) FROM app.sbx_attempts a WHERE a.run_id = :r AND {_UNRECORDED}),
              (SELECT COUNT(*) FROM app.sbx_runs r WHERE r.run_id = :r AND NOT EXISTS (
                  SELECT 1 FROM app.sbx_attempts a WHERE a.run_id = r.run_id
                  AND a.step_id = r.step_id AND a.task_key = r.task_key
                  AND a.attempt = r.attempt)),
              (SELECT COUNT(*) FROM (
                  SELECT task_key FROM app.sbx_attempts WHERE run_id = :r GROUP BY task_key
                  HAVING COUNT(DISTINCT attempt) <> COUNT(*) OR MAX(attempt) <> COUNT(*)
                     OR MIN(attempt) <> 1) numbering)
            """
        ),
        {"r": run_id},
    ).one()
    return AttemptAccount(
        started=started,
        recorded=recorded,
        unrecorded=unrecorded,
        unstarted=unstarted,
        misnumbered=misnumbered,
    )
