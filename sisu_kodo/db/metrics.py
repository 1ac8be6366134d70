"""Aggregates for the worker's /metrics: queue depths and step latencies."""

from __future__ import annotations

from collections import Counter

import sqlalchemy as sa
from dbos import DBOSClient


def queue_depths(client: DBOSClient) -> list[tuple[str, str, int]]:
    """(queue, status, count) of workflows waiting on or running from each queue."""
    queued = client.list_queued_workflows(
        status=["ENQUEUED", "PENDING"], load_input=False, load_output=False
    )
    depths = Counter(
        (workflow.queue_name, workflow.status) for workflow in queued if workflow.queue_name
    )
    return [(queue, status, count) for (queue, status), count in sorted(depths.items())]


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
