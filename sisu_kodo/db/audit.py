"""The audit log: append-only (the database refuses UPDATE, DELETE and TRUNCATE)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa


@dataclass(frozen=True)
class AuditRecord:
    principal: str
    principal_name: str | None
    action: str
    target: str | None
    status: int
    code: str | None
    request_id: str
    client_addr: str | None


@dataclass(frozen=True)
class AuditRow(AuditRecord):
    id: int
    at: datetime


def append(conn: sa.Connection, record: AuditRecord) -> None:
    conn.execute(
        sa.text(
            "INSERT INTO app.audit_log (principal, principal_name, action, target, status,"
            " code, request_id, client_addr) VALUES (:principal, :principal_name, :action,"
            " :target, :status, :code, :request_id, :client_addr)"
        ),
        record.__dict__,
    )


def list_entries(
    conn: sa.Connection,
    *,
    target: str | None = None,
    principal: str | None = None,
    since: datetime | None = None,
    before_id: int | None = None,
    limit: int = 100,
) -> list[AuditRow]:
    """Newest first; `before_id` is the cursor of the next (older) page."""
    rows = conn.execute(
        sa.text(
            "SELECT principal, principal_name, action, target, status, code, request_id,"
            " client_addr, id, at FROM app.audit_log"
            " WHERE (CAST(:target AS text) IS NULL OR target = :target)"
            " AND (CAST(:principal AS text) IS NULL OR principal = :principal)"
            " AND (CAST(:since AS timestamptz) IS NULL OR at >= :since)"
            " AND (CAST(:before AS bigint) IS NULL OR id < :before)"
            " ORDER BY id DESC LIMIT :limit"
        ),
        {
            "target": target,
            "principal": principal,
            "since": since,
            "before": before_id,
            "limit": limit,
        },
    )
    return [AuditRow(*row) for row in rows]
