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
    ok: bool
    role: str
    appVersion: str
    database: str
    workers: list[WorkerView]
    warnings: list[str] = []
