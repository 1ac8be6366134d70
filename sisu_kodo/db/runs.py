"""Runs: the run projection, its steps, its phase events and its approval record.

Every status change goes through `transition`, which locks the run row, refuses to
leave a terminal status, and appends the matching `run_events` row in the same
transaction, so the projection and its event history can never disagree.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB

from sisu_kodo.contracts.runs import TERMINAL_STATUSES, NextAction, RunStatus
from sisu_kodo.contracts.webhooks import NOTIFIED_RUN_EVENTS
from sisu_kodo.errors import IllegalStateError, NotFoundError

_RUN_COLUMNS = (
    "id, intent_id, workflow_id, status, last_step, next_action, error, retry_count,"
    " queue_partition_key, recipe_name, start_request, app_version, plan_sha256,"
    " tasks_sha256, created_at, updated_at"
)


@dataclass(frozen=True)
class RunRow:
    id: str
    intent_id: str
    workflow_id: str
    status: RunStatus
    last_step: str | None
    next_action: NextAction
    error: str | None
    retry_count: int
    queue_partition_key: str
    recipe_name: str
    start_request: dict[str, Any]
    app_version: str
    plan_sha256: str | None
    tasks_sha256: str | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_row(cls, row: sa.Row[Any]) -> RunRow:
        values = list(row)
        values[3] = RunStatus(values[3])
        values[5] = NextAction(values[5])
        return cls(*values)


@dataclass(frozen=True)
class StepRow:
    step_id: str
    phase: str
    attempt: int
    output: dict[str, Any] | None
    started_at: datetime
    finished_at: datetime | None
    task_total: int | None = None  # when output.raw.tasks was cut to a page


@dataclass(frozen=True)
class EventRow:
    seq: int
    at: datetime
    type: str
    status: str
    step_id: str | None
    detail: dict[str, Any]


@dataclass(frozen=True)
class ApprovalRow:
    decision: str
    decided_by: str
    notes: str | None
    plan_sha256: str
    tasks_sha256: str
    decided_at: datetime
    workspace_sha256: str | None = None


def insert_run(
    conn: sa.Connection,
    *,
    run_id: str,
    intent_id: str,
    workflow_id: str,
    queue_partition_key: str,
    recipe_name: str,
    start_request: dict[str, Any],
    app_version: str,
) -> bool:
    """Insert a queued run; False when the intent already has one."""
    result = conn.execute(
        sa.text(
            """
            INSERT INTO app.runs (id, intent_id, workflow_id, status, queue_partition_key,
                                  recipe_name, start_request, app_version)
            VALUES (:id, :intent_id, :workflow_id, 'queued', :pk, :recipe, :start, :version)
            ON CONFLICT (intent_id) DO NOTHING
            """
        ).bindparams(sa.bindparam("start", type_=JSONB)),
        {
            "id": run_id,
            "intent_id": intent_id,
            "workflow_id": workflow_id,
            "pk": queue_partition_key,
            "recipe": recipe_name,
            "start": start_request,
            "version": app_version,
        },
    )
    inserted = result.rowcount == 1
    if inserted:
        append_event(
            conn,
            run_id=run_id,
            type="run.queued",
            status=RunStatus.QUEUED,
            detail={"queuePartitionKey": queue_partition_key, "appVersion": app_version},
        )
    return inserted


def read_run(conn: sa.Connection, *, run_id: str, for_update: bool = False) -> RunRow | None:
    lock = " FOR UPDATE" if for_update else ""
    row = conn.execute(
        sa.text(f"SELECT {_RUN_COLUMNS} FROM app.runs WHERE id = :id{lock}"), {"id": run_id}
    ).one_or_none()
    return RunRow.from_row(row) if row else None


def read_run_by_intent(conn: sa.Connection, *, intent_id: str) -> RunRow | None:
    row = conn.execute(
        sa.text(f"SELECT {_RUN_COLUMNS} FROM app.runs WHERE intent_id = :id"), {"id": intent_id}
    ).one_or_none()
    return RunRow.from_row(row) if row else None


def require_run(conn: sa.Connection, *, run_id: str, for_update: bool = False) -> RunRow:
    run = read_run(conn, run_id=run_id, for_update=for_update)
    if run is None:
        raise NotFoundError(f"run {run_id} not found", {"runId": run_id})
    return run


_UNSET: Any = object()


def transition(
    conn: sa.Connection,
    *,
    run_id: str,
    status: RunStatus,
    event: str,
    step_id: str | None = None,
    detail: dict[str, Any] | None = None,
    allowed_from: frozenset[RunStatus] | None = None,
    last_step: str | None = _UNSET,
    next_action: NextAction = NextAction.NONE,
    error: str | None = None,
    plan_sha256: str | None = _UNSET,
    tasks_sha256: str | None = _UNSET,
) -> RunRow:
    """Move a run to `status` and append the event, or raise IllegalStateError.

    A terminal run never moves (retries are a separate, explicit verb); `allowed_from`
    narrows the legal source statuses further.
    """
    run = require_run(conn, run_id=run_id, for_update=True)
    if run.status in TERMINAL_STATUSES or (
        allowed_from is not None and run.status not in allowed_from
    ):
        raise IllegalStateError(
            f"run {run_id} is {run.status.value}; cannot move to {status.value}",
            {"runId": run_id, "status": run.status.value},
        )
    assignments = {
        "status": status.value,
        "next_action": next_action.value,
        "error": error,
    }
    if last_step is not _UNSET:
        assignments["last_step"] = last_step
    if plan_sha256 is not _UNSET:
        assignments["plan_sha256"] = plan_sha256
    if tasks_sha256 is not _UNSET:
        assignments["tasks_sha256"] = tasks_sha256
    sets = ", ".join(f"{column} = :{column}" for column in assignments)
    conn.execute(
        sa.text(f"UPDATE app.runs SET {sets}, updated_at = now() WHERE id = :run_id"),
        {**assignments, "run_id": run_id},
    )
    append_event(conn, run_id=run_id, type=event, status=status, step_id=step_id, detail=detail)
    return require_run(conn, run_id=run_id)


def append_event(
    conn: sa.Connection,
    *,
    run_id: str,
    type: str,
    status: RunStatus,
    step_id: str | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    """Append the next event of a run; callers hold the run row lock (or just created it).

    A notified event (contracts/webhooks.py) also enters the webhook outbox in the same
    transaction, so no notification is lost or sent for an event that did not commit.
    """
    seq = conn.execute(
        sa.text(
            """
            INSERT INTO app.run_events (run_id, seq, type, status, step_id, detail)
            SELECT :run_id, COALESCE(MAX(seq), 0) + 1, :type, :status, :step_id, :detail
            FROM app.run_events WHERE run_id = :run_id
            RETURNING seq
            """
        ).bindparams(sa.bindparam("detail", type_=JSONB)),
        {
            "run_id": run_id,
            "type": type,
            "status": status.value,
            "step_id": step_id,
            "detail": detail or {},
        },
    ).scalar_one()
    notified = NOTIFIED_RUN_EVENTS.get(type)
    if notified is not None:
        conn.execute(
            sa.text(
                "INSERT INTO app.webhook_outbox (run_id, seq, event_type)"
                " VALUES (:run_id, :seq, :event_type)"
            ),
            {"run_id": run_id, "seq": seq, "event_type": notified.value},
        )


def note_event(conn: sa.Connection, run: RunRow, *, type: str, detail: dict[str, Any]) -> None:
    """An event that does not move the run (a comment, a deadline's warning or extension),
    at its current status and step; the caller holds the run row lock."""
    append_event(
        conn, run_id=run.id, type=type, status=run.status, step_id=run.last_step, detail=detail
    )


def list_events(conn: sa.Connection, *, run_id: str, after_seq: int = 0) -> list[EventRow]:
    rows = conn.execute(
        sa.text(
            "SELECT seq, at, type, status, step_id, detail FROM app.run_events"
            " WHERE run_id = :run_id AND seq > :after ORDER BY seq"
        ),
        {"run_id": run_id, "after": after_seq},
    ).all()
    return [EventRow(*row) for row in rows]


def start_step(conn: sa.Connection, *, run_id: str, step_id: str, phase: str) -> int:
    """Open the next attempt of a step (1 the first time, one more on every retry)."""
    attempt = conn.execute(
        sa.text(
            """
            INSERT INTO app.run_steps (run_id, step_id, attempt, phase)
            SELECT :run_id, :step_id, COALESCE(MAX(attempt), 0) + 1, :phase
            FROM app.run_steps WHERE run_id = :run_id AND step_id = :step_id
            RETURNING attempt
            """
        ),
        {"run_id": run_id, "step_id": step_id, "phase": phase},
    ).scalar_one()
    return int(attempt)


def finish_step(conn: sa.Connection, *, run_id: str, step_id: str, output: dict[str, Any]) -> None:
    """Record the output of the step's latest attempt."""
    conn.execute(
        sa.text(
            """
            UPDATE app.run_steps SET output = :output, finished_at = now()
            WHERE run_id = :run_id AND step_id = :step_id AND attempt = (
                SELECT MAX(attempt) FROM app.run_steps
                WHERE run_id = :run_id AND step_id = :step_id)
            """
        ).bindparams(sa.bindparam("output", type_=JSONB)),
        {"run_id": run_id, "step_id": step_id, "output": output},
    )


def reopen_for_retry(conn: sa.Connection, *, run_id: str, from_step: str) -> RunRow:
    """The one way out of a terminal status: an explicit retry, counted in retry_count."""
    run = require_run(conn, run_id=run_id, for_update=True)
    conn.execute(
        sa.text(
            "UPDATE app.runs SET status = 'queued', next_action = 'NONE', error = NULL,"
            " retry_count = retry_count + 1, updated_at = now() WHERE id = :id"
        ),
        {"id": run_id},
    )
    append_event(
        conn,
        run_id=run_id,
        type="run.retried",
        status=RunStatus.QUEUED,
        step_id=from_step,
        detail={"fromStep": from_step, "retryCount": run.retry_count + 1, "after": run.error},
    )
    return require_run(conn, run_id=run_id)


def list_steps(conn: sa.Connection, *, run_id: str, tasks_limit: int = 100) -> list[StepRow]:
    """The latest attempt of each step, in the order the steps started.

    An output's `raw.tasks` list (ExecuteST's, which can hold 10,000 entries) comes back
    cut to its first `tasks_limit` entries, with the full length in `task_total`; the cut
    happens in PostgreSQL so a large run's view stays cheap.
    """
    rows = conn.execute(
        sa.text(
            """
            SELECT step_id, phase, attempt,
                   CASE WHEN jsonb_typeof(output->'raw'->'tasks') = 'array'
                        THEN jsonb_set(output, '{raw,tasks}', jsonb_path_query_array(
                            output->'raw'->'tasks', '$[0 to $last]',
                            jsonb_build_object('last', CAST(:limit AS int) - 1)))
                        ELSE output END,
                   started_at, finished_at,
                   CASE WHEN jsonb_typeof(output->'raw'->'tasks') = 'array'
                        THEN jsonb_array_length(output->'raw'->'tasks') END
            FROM (
                SELECT DISTINCT ON (step_id) * FROM app.run_steps
                WHERE run_id = :run_id ORDER BY step_id, attempt DESC
            ) latest ORDER BY started_at, step_id
            """
        ),
        {"run_id": run_id, "limit": tasks_limit},
    ).all()
    return [StepRow(*row) for row in rows]


def read_task_page(
    conn: sa.Connection,
    *,
    run_id: str,
    step_id: str,
    offset: int,
    limit: int,
    status: str | None = None,
) -> tuple[list[dict[str, Any]], int] | None:
    """A page of a finished step's `raw.tasks` (those with `status`, if given) and how many
    there are; None if the step has not finished."""
    row = conn.execute(
        sa.text(
            """
            SELECT jsonb_path_query_array(tasks, '$[$first to $last]',
                       jsonb_build_object('first', CAST(:offset AS int),
                                          'last', CAST(:offset AS int) + CAST(:limit AS int) - 1)),
                   jsonb_array_length(tasks)
            FROM (
                SELECT CASE WHEN CAST(:status AS text) IS NULL THEN output->'raw'->'tasks'
                            ELSE jsonb_path_query_array(output->'raw'->'tasks',
                                '$[*] ? (@.status == $status)',
                                jsonb_build_object('status', CAST(:status AS text))) END AS tasks
                FROM app.run_steps WHERE run_id = :run_id AND step_id = :step_id
                  AND finished_at IS NOT NULL AND jsonb_typeof(output->'raw'->'tasks') = 'array'
                ORDER BY attempt DESC LIMIT 1
            ) finished
            """
        ),
        {
            "run_id": run_id,
            "step_id": step_id,
            "offset": offset,
            "limit": limit,
            "status": status,
        },
    ).one_or_none()
    return (row[0], row[1]) if row else None


def read_step_output(conn: sa.Connection, *, run_id: str, step_id: str) -> dict[str, Any] | None:
    row = conn.execute(
        sa.text(
            "SELECT output FROM app.run_steps WHERE run_id = :run_id AND step_id = :step_id"
            " ORDER BY attempt DESC LIMIT 1"
        ),
        {"run_id": run_id, "step_id": step_id},
    ).one_or_none()
    return row[0] if row else None


def record_decision(
    conn: sa.Connection,
    *,
    run_id: str,
    decision: str,
    decided_by: str,
    notes: str | None,
    plan_sha256: str,
    tasks_sha256: str,
    key_id: str | None = None,
    key_name: str | None = None,
    client_addr: str | None = None,
    overrule: bool = False,
    workspace_sha256: str | None = None,
) -> None:
    """The gate's decision; `decided_by` is the body's note, `key_id`/`key_name` the
    authenticated principal (None while auth is off); `workspace_sha256` the snapshot
    the decided tasks work on (None for a run without a workspace). `overrule`: a
    rejection at the canary gate replaces the approval that let the canary run (the
    events keep both; the workspace the canary ran on stays recorded)."""
    conflict = (
        " ON CONFLICT (run_id) DO UPDATE SET decision = EXCLUDED.decision,"
        " decided_by = EXCLUDED.decided_by, notes = EXCLUDED.notes, key_id = EXCLUDED.key_id,"
        " key_name = EXCLUDED.key_name, client_addr = EXCLUDED.client_addr,"
        " decided_at = now()"
        if overrule
        else ""
    )
    conn.execute(
        sa.text(
            """
            INSERT INTO app.plan_approvals (run_id, decision, decided_by, notes, plan_sha256,
                tasks_sha256, key_id, key_name, client_addr, workspace_sha256)
            VALUES (:run_id, :decision, :by, :notes, :plan, :tasks, :key_id, :key_name, :addr,
                :workspace)
            """
            + conflict
        ),
        {
            "run_id": run_id,
            "decision": decision,
            "by": decided_by,
            "notes": notes,
            "plan": plan_sha256,
            "tasks": tasks_sha256,
            "key_id": key_id,
            "key_name": key_name,
            "addr": client_addr,
            "workspace": workspace_sha256,
        },
    )


def read_decision(conn: sa.Connection, *, run_id: str) -> ApprovalRow | None:
    row = conn.execute(
        sa.text(
            "SELECT decision, decided_by, notes, plan_sha256, tasks_sha256, decided_at,"
            " workspace_sha256 FROM app.plan_approvals WHERE run_id = :run_id"
        ),
        {"run_id": run_id},
    ).one_or_none()
    return ApprovalRow(*row) if row else None


def count_runs_by_status(conn: sa.Connection) -> dict[str, int]:
    rows = conn.execute(sa.text("SELECT status, COUNT(*) FROM app.runs GROUP BY status")).all()
    return dict(rows)
