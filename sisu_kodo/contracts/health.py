"""Health bodies of the API (/healthz) and the worker admin server."""

from __future__ import annotations

from pydantic import BaseModel


class WorkerView(BaseModel):
    executorId: str
    appVersion: str
    pid: int
    hostname: str
    startedAt: str
    heartbeatAt: str
    alive: bool


class Health(BaseModel):
    """With auth on, an anonymous caller sees only ok, appVersion and warnings."""

    ok: bool
    role: str | None = None
    appVersion: str
    database: str | None = None
    workers: list[WorkerView] | None = None
    warnings: list[str] = []
