"""Every attempt of a run's steps (`app.run_steps`), with its timings."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa


@dataclass(frozen=True)
class StepAttemptRow:
    step_id: str
    phase: str
    attempt: int
    started_at: datetime
    finished_at: datetime | None
    duration_ms: int | None


def list_step_attempts(conn: sa.Connection, *, run_id: str) -> list[StepAttemptRow]:
    """Oldest first; a retried step has one row per attempt."""
    rows = conn.execute(
        sa.text(
            """
            SELECT step_id, phase, attempt, started_at, finished_at,
                   CAST(EXTRACT(EPOCH FROM finished_at - started_at) * 1000 AS bigint)
              FROM app.run_steps WHERE run_id = :run_id
             ORDER BY started_at, step_id, attempt
            """
        ),
        {"run_id": run_id},
    ).all()
    return [StepAttemptRow(*row) for row in rows]
