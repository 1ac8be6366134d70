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
    # A live worker runs this API's app version (what the version-gap warning says in words);
    # shown to anonymous callers too, so `sisu up` can wait for it with auth on.
    workerReady: bool | None = None
    warnings: list[str] = []
