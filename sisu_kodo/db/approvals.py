"""Who started a run, and the distinct approvers of its decided plan (the gate's quorum)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB


@dataclass(frozen=True)
class Starter:
    key_id: str | None
    name: str | None


@dataclass(frozen=True)
class VoteRow:
    principal: str
    key_name: str | None
    approved_by: str
    decided_at: datetime


def record_starter(conn: sa.Connection, *, run_id: str, key_id: str | None, name: str) -> None:
    conn.execute(
        sa.text(
            "UPDATE app.runs SET started_by_key_id = :key_id, started_by_name = :name"
            " WHERE id = :id"
        ),
        {"id": run_id, "key_id": key_id, "name": name},
    )


def read_starter(conn: sa.Connection, *, run_id: str) -> Starter:
    row = conn.execute(
        sa.text("SELECT started_by_key_id, started_by_name FROM app.runs WHERE id = :id"),
        {"id": run_id},
    ).one_or_none()
    return Starter(*row) if row else Starter(None, None)


def record_vote(
    conn: sa.Connection,
    *,
    run_id: str,
    plan_sha256: str,
    tasks_sha256: str,
    principal: str,
    key_name: str | None,
    approved_by: str,
    notes: str | None,
    client_addr: str | None,
) -> None:
    """One approver's vote for one decided plan; the same principal again counts once."""
    conn.execute(
        sa.text(
            """
            INSERT INTO app.plan_approval_votes (run_id, plan_sha256, tasks_sha256, principal,
                key_name, approved_by, notes, client_addr)
            VALUES (:run_id, :plan, :tasks, :principal, :key_name, :by, :notes, :addr)
            ON CONFLICT (run_id, plan_sha256, tasks_sha256, principal) DO NOTHING
            """
        ),
        {
            "run_id": run_id,
            "plan": plan_sha256,
            "tasks": tasks_sha256,
            "principal": principal,
            "key_name": key_name,
            "by": approved_by,
            "notes": notes,
            "addr": client_addr,
        },
    )


def list_votes(
    conn: sa.Connection, *, run_id: str, plan_sha256: str, tasks_sha256: str
) -> list[VoteRow]:
    rows = conn.execute(
        sa.text(
            "SELECT principal, key_name, approved_by, decided_at FROM app.plan_approval_votes"
            " WHERE run_id = :run_id AND plan_sha256 = :plan AND tasks_sha256 = :tasks"
            " ORDER BY decided_at, principal"
        ),
        {"run_id": run_id, "plan": plan_sha256, "tasks": tasks_sha256},
    )
    return [VoteRow(*row) for row in rows]


@dataclass(frozen=True)
class ApprovedTasks:
    keys: list[str] | None  # None: approved before task sets were recorded (every task)
    sha256: str | None
    canary: int | None


def record_approved_tasks(
    conn: sa.Connection, *, run_id: str, keys: list[str], sha256: str, canary: int | None
) -> None:
    conn.execute(
        sa.text(
            "UPDATE app.runs SET approved_tasks = :keys, approved_tasks_sha256 = :sha,"
            " canary = :canary WHERE id = :id"
        ).bindparams(sa.bindparam("keys", type_=JSONB)),
        {"id": run_id, "keys": keys, "sha": sha256, "canary": canary},
    )


def read_approved_tasks(conn: sa.Connection, *, run_id: str) -> ApprovedTasks:
    row = conn.execute(
        sa.text(
            "SELECT approved_tasks, approved_tasks_sha256, canary FROM app.runs WHERE id = :id"
        ),
        {"id": run_id},
    ).one_or_none()
    return ApprovedTasks(*row) if row else ApprovedTasks(None, None, None)
