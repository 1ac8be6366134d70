"""Worker registry: executor identities and their heartbeats."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa


@dataclass(frozen=True)
class WorkerRow:
    executor_id: str
    app_version: str
    pid: int
    hostname: str
    started_at: datetime
    heartbeat_at: datetime
    alive: bool
    heartbeat_age_seconds: float  # by the database's clock, as `alive` is


def register(
    conn: sa.Connection, *, executor_id: str, app_version: str, pid: int, hostname: str
) -> None:
    conn.execute(
        sa.text(
            """
            INSERT INTO app.workers (executor_id, app_version, pid, hostname)
            VALUES (:executor_id, :app_version, :pid, :hostname)
            ON CONFLICT (executor_id) DO UPDATE SET
                app_version = EXCLUDED.app_version, pid = EXCLUDED.pid,
                hostname = EXCLUDED.hostname, started_at = now(), heartbeat_at = now()
            """
        ),
        {"executor_id": executor_id, "app_version": app_version, "pid": pid, "hostname": hostname},
    )


def beat(conn: sa.Connection, *, executor_id: str) -> None:
    conn.execute(
        sa.text("UPDATE app.workers SET heartbeat_at = now() WHERE executor_id = :id"),
        {"id": executor_id},
    )


def deregister(conn: sa.Connection, *, executor_id: str) -> None:
    conn.execute(sa.text("DELETE FROM app.workers WHERE executor_id = :id"), {"id": executor_id})


def list_workers(conn: sa.Connection, *, ttl_seconds: float) -> list[WorkerRow]:
    rows = conn.execute(
        sa.text(
            """
            SELECT executor_id, app_version, pid, hostname, started_at, heartbeat_at,
                   heartbeat_at > now() - make_interval(secs => :ttl) AS alive,
                   CAST(EXTRACT(EPOCH FROM now() - heartbeat_at) AS float8)
            FROM app.workers ORDER BY executor_id
            """
        ),
        {"ttl": ttl_seconds},
    ).all()
    return [WorkerRow(*row) for row in rows]


def queued_runs_without_worker(conn: sa.Connection, *, ttl_seconds: float) -> dict[str, int]:
    """Queued runs per app version that no live worker runs (manual: "Stuck queued")."""
    rows = conn.execute(
        sa.text(
            """
            SELECT r.app_version, COUNT(*) FROM app.runs r
            WHERE r.status = 'queued' AND NOT EXISTS (
                SELECT 1 FROM app.workers w WHERE w.app_version = r.app_version
                AND w.heartbeat_at > now() - make_interval(secs => :ttl))
            GROUP BY 1
            """
        ),
        {"ttl": ttl_seconds},
    ).all()
    return dict(rows)
