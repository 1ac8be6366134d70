"""Queue and executor load, read from DBOS's `workflow_status` (the system database).

Counted in SQL: a busy fleet's board reads a few grouped rows, never the workflows.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from sisu_kodo.db.recovery import FINISHED_STATUSES
from sisu_kodo.db.run_list import Scope

WAITING_STATUSES = ("ENQUEUED", "DELAYED")
FAILED_STATUSES = ("ERROR", "MAX_RECOVERY_ATTEMPTS_EXCEEDED")


@dataclass(frozen=True)
class PartitionRow:
    queue: str
    partition: str
    enqueued: int
    running: int
    finished_5m: int
    finished_60m: int
    failed_60m: int


def partition_loads(
    sys_conn: sa.Connection, *, queues: list[str], scope: Scope, schema: str = "dbos"
) -> list[PartitionRow]:
    """Per queue and partition: waiting, running, and finished in the last 5 and 60 minutes."""
    rows = sys_conn.execute(
        sa.text(
            f"""
            WITH recent AS (
                SELECT queue_name, COALESCE(queue_partition_key, '') AS partition, status,
                       updated_at >= CAST(EXTRACT(EPOCH FROM now()) * 1000 AS bigint) - 300000
                           AS last_5m
                  FROM "{schema}".workflow_status
                 WHERE queue_name = ANY(:queues)
                   AND (status IN ('ENQUEUED', 'DELAYED', 'PENDING')
                        OR updated_at >= CAST(EXTRACT(EPOCH FROM now()) * 1000 AS bigint)
                                         - 3600000)
            )
            SELECT queue_name, partition,
                   COUNT(*) FILTER (WHERE status = ANY(:waiting)),
                   COUNT(*) FILTER (WHERE status = 'PENDING'),
                   COUNT(*) FILTER (WHERE status = ANY(:finished) AND last_5m),
                   COUNT(*) FILTER (WHERE status = ANY(:finished)),
                   COUNT(*) FILTER (WHERE status = ANY(:failed))
              FROM recent
             WHERE CAST(:every AS boolean) OR partition = ANY(CAST(:scope AS text[]))
             GROUP BY 1, 2 ORDER BY 1, 2
            """
        ),
        {
            "queues": queues,
            "waiting": list(WAITING_STATUSES),
            "finished": list(FINISHED_STATUSES),
            "failed": list(FAILED_STATUSES),
            "every": scope.tenants is None,
            "scope": sorted(scope.tenants or ()),
        },
    ).all()
    return [PartitionRow(*row) for row in rows]


def in_flight_by_executor(
    sys_conn: sa.Connection, *, queues: list[str], schema: str = "dbos"
) -> dict[str, dict[str, int]]:
    """{executor id: {queue: workflows it is running}}."""
    rows = sys_conn.execute(
        sa.text(
            f'SELECT executor_id, queue_name, COUNT(*) FROM "{schema}".workflow_status'
            " WHERE status = 'PENDING' AND queue_name = ANY(:queues) GROUP BY 1, 2"
        ),
        {"queues": queues},
    ).all()
    loads: dict[str, dict[str, int]] = {}
    for executor, queue, count in rows:
        loads.setdefault(executor or "", {})[queue] = int(count)
    return loads
