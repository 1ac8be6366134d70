"""What the workers read from DBOS's system tables: dead executors' work, child progress."""

from __future__ import annotations

import sqlalchemy as sa


def executors_with_pending_work(
    sys_conn: sa.Connection, *, app_name: str, exclude: str, schema: str = "dbos"
) -> list[str]:
    """Executor ids that own PENDING workflows of this app, other than `exclude`."""
    rows = sys_conn.execute(
        sa.text(
            f'SELECT DISTINCT executor_id FROM "{schema}".workflow_status'
            " WHERE status = 'PENDING' AND application_name = :app"
            " AND executor_id IS NOT NULL AND executor_id <> :me"
        ),
        {"app": app_name, "me": exclude},
    ).all()
    return [row[0] for row in rows]


def pending_workflows(
    sys_conn: sa.Connection, *, app_name: str, executor_id: str, schema: str = "dbos"
) -> list[tuple[str, str | None]]:
    """(workflow id, queue name) of the PENDING workflows an executor owns."""
    rows = sys_conn.execute(
        sa.text(
            f'SELECT workflow_uuid, queue_name FROM "{schema}".workflow_status'
            " WHERE status = 'PENDING' AND application_name = :app AND executor_id = :executor"
        ),
        {"app": app_name, "executor": executor_id},
    ).all()
    return [(row[0], row[1]) for row in rows]


FINISHED_STATUSES = ("SUCCESS", "ERROR", "CANCELLED", "MAX_RECOVERY_ATTEMPTS_EXCEEDED")


def finished_workflows(
    sys_conn: sa.Connection, *, workflow_ids: list[str], schema: str = "dbos"
) -> dict[str, str]:
    """{workflow id: final status} of those among `workflow_ids` that have ended."""
    rows = sys_conn.execute(
        sa.text(
            f'SELECT workflow_uuid, status FROM "{schema}".workflow_status'
            " WHERE workflow_uuid = ANY(:ids) AND status = ANY(:done)"
        ),
        {"ids": workflow_ids, "done": list(FINISHED_STATUSES)},
    ).all()
    return {row[0]: row[1] for row in rows}
