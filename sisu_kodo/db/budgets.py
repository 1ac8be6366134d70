"""What a run has spent while executing: sandbox wall time and attempts (every attempt of
every round, retries included), and wall clock since ExecuteST first started."""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa


@dataclass(frozen=True)
class Spent:
    sandbox_ms: int
    attempts: int
    wall_seconds: float


def spent(conn: sa.Connection, *, run_id: str) -> Spent:
    row = conn.execute(
        sa.text(
            """
            SELECT COALESCE(SUM((metrics->>'wallMs')::bigint), 0), COUNT(*),
                   (SELECT COALESCE(EXTRACT(EPOCH FROM now() - MIN(started_at)), 0)
                      FROM app.run_steps WHERE run_id = :run_id AND step_id = 'ExecuteST')
              FROM app.sbx_runs WHERE run_id = :run_id AND step_id = 'ExecuteST'
            """
        ),
        {"run_id": run_id},
    ).one()
    return Spent(int(row[0]), int(row[1]), float(row[2]))


def raise_sandbox_minutes(conn: sa.Connection, *, run_id: str, minutes: int) -> None:
    conn.execute(
        sa.text("UPDATE app.runs SET sandbox_minutes = :minutes WHERE id = :run_id"),
        {"run_id": run_id, "minutes": minutes},
    )


def raised_sandbox_minutes(conn: sa.Connection, *, run_id: str) -> int | None:
    value = conn.execute(
        sa.text("SELECT sandbox_minutes FROM app.runs WHERE id = :run_id"), {"run_id": run_id}
    ).scalar_one_or_none()
    return int(value) if value is not None else None
