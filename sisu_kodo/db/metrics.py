"""Aggregates for the worker's /metrics: queue depths and step latencies."""

from __future__ import annotations

import sqlalchemy as sa


def queue_depths(sys_conn: sa.Connection, *, schema: str = "dbos") -> list[tuple[str, str, int]]:
    """(queue, status, count) of workflows waiting on or running from each queue."""
    rows = sys_conn.execute(
        sa.text(
            f'SELECT queue_name, status, COUNT(*) FROM "{schema}".workflow_status'
            " WHERE queue_name IS NOT NULL AND status IN ('ENQUEUED', 'PENDING')"
            " GROUP BY 1, 2"
        )
    ).all()
    return [(queue, status, count) for queue, status, count in rows]


def step_latencies(conn: sa.Connection) -> list[tuple[str, int, float]]:
    """(step_id, finished count, total seconds) over every finished run step."""
    rows = conn.execute(
        sa.text(
            """
            SELECT step_id, COUNT(*),
                   COALESCE(SUM(EXTRACT(EPOCH FROM finished_at - started_at)), 0)
            FROM app.run_steps WHERE finished_at IS NOT NULL GROUP BY step_id
            """
        )
    ).all()
    return [(step, count, float(total)) for step, count, total in rows]
