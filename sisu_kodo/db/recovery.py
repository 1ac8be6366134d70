"""What the workers read of DBOS's workflows: dead executors' work, child progress."""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from dbos import DBOSClient, WorkflowStatus


def executors_with_pending_work(client: DBOSClient, *, app_name: str, exclude: str) -> list[str]:
    """Executor ids that own PENDING workflows of this app, other than `exclude`."""
    owners = {workflow.executor_id for workflow in _pending(client, app_name=app_name)}
    return sorted(owner for owner in owners if owner is not None and owner != exclude)


def pending_workflows(
    client: DBOSClient, *, app_name: str, executor_id: str
) -> list[tuple[str, str | None]]:
    """(workflow id, queue name) of the PENDING workflows an executor owns."""
    return [
        (workflow.workflow_id, workflow.queue_name)
        for workflow in _pending(client, app_name=app_name, executor_id=executor_id)
    ]


def _pending(
    client: DBOSClient, *, app_name: str, executor_id: str | None = None
) -> Sequence[WorkflowStatus]:
    return client.list_workflows(
        status="PENDING",
        application_name=app_name,
        executor_id=executor_id,
        load_input=False,
        load_output=False,
    )


FINISHED_STATUSES = ("SUCCESS", "ERROR", "CANCELLED", "MAX_RECOVERY_ATTEMPTS_EXCEEDED")


def finished_workflows(
    sys_conn: sa.Connection, *, workflow_ids: list[str], schema: str = "dbos"
) -> dict[str, str]:
    """{workflow id: final status} of those among `workflow_ids` that have ended.

    SQL, not `DBOSClient.list_workflows(workflow_ids=..., status=[...], load_input=False,
    load_output=False)`: the fan-out reads this on every wake-up, and for 64 ids among 5,000
    rows (500 calls each, 2 shared cores, 2026-12-01) the public call took a median of
    28 ms against 15-16 ms for this query, nearly twice as long.
    """
    rows = sys_conn.execute(
        sa.text(
            f'SELECT workflow_uuid, status FROM "{schema}".workflow_status'
            " WHERE workflow_uuid = ANY(:ids) AND status = ANY(:done)"
        ),
        {"ids": workflow_ids, "done": list(FINISHED_STATUSES)},
    ).all()
    return {row[0]: row[1] for row in rows}
