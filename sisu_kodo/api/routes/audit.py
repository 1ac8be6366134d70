"""Routes: /audit (admin, operator): the append-only audit log, newest first."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import sqlalchemy as sa
from fastapi import APIRouter, Query

from sisu_kodo.api.deps import AuditorDep, StateDep
from sisu_kodo.api.errors import error_responses
from sisu_kodo.api.views import iso
from sisu_kodo.contracts.audit import AuditEntry, AuditPage
from sisu_kodo.db import audit

router = APIRouter(tags=["audit"])

PAGE = 100


@router.get("/audit", response_model=AuditPage, responses=error_responses(400, 401, 403))
def list_audit(
    state: StateDep,
    caller: AuditorDep,
    runId: Annotated[str | None, Query(max_length=200, pattern=r"^[A-Za-z0-9_.:-]+$")] = None,
    principal: Annotated[str | None, Query(max_length=200, pattern=r"^[A-Za-z0-9_.:-]+$")] = None,
    since: datetime | None = None,
    cursor: Annotated[int | None, Query(ge=1, lt=2**63)] = None,
) -> AuditPage:
    """Entries for a run (`runId`), a principal (key id or `anonymous`), after `since`;
    `cursor` is the previous page's `nextCursor`."""
    with state.engine.connect() as conn:
        return read_audit_page(conn, target=runId, principal=principal, since=since, cursor=cursor)


def read_audit_page(
    conn: sa.Connection,
    *,
    target: str | None,
    principal: str | None,
    since: datetime | None,
    cursor: int | None,
) -> AuditPage:
    """A page of the audit log, newest first (GET /audit and the console's audit page)."""
    rows = audit.list_entries(
        conn, target=target, principal=principal, since=since, before_id=cursor, limit=PAGE
    )
    return AuditPage(
        entries=[audit_entry(row) for row in rows],
        nextCursor=rows[-1].id if len(rows) == PAGE else None,
    )


def audit_entry(row: audit.AuditRow) -> AuditEntry:
    return AuditEntry(
        id=row.id,
        at=iso(row.at) or "",
        principal=row.principal,
        principalName=row.principal_name,
        action=row.action,
        target=row.target,
        status=row.status,
        code=row.code,
        requestId=row.request_id,
        clientAddr=row.client_addr,
    )
