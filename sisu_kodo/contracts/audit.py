"""Audit log bodies: GET /audit answers a page of entries, newest first."""

from __future__ import annotations

from pydantic import BaseModel


class AuditEntry(BaseModel):
    id: int
    at: str
    principal: str
    principalName: str | None = None
    action: str
    target: str | None = None
    status: int
    code: str | None = None
    requestId: str
    clientAddr: str | None = None


class AuditPage(BaseModel):
    entries: list[AuditEntry]
    nextCursor: int | None = None
