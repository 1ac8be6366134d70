"""Routes: /healthz."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from sisu_kodo.api.deps import StateDep
from sisu_kodo.api.errors import error_responses
from sisu_kodo.api.views import app_version_gap, iso
from sisu_kodo.contracts.health import Health, WorkerView
from sisu_kodo.db import workers

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health, responses=error_responses(503))
def healthz(state: StateDep) -> JSONResponse:
    """Up, database reachable, and which workers (and app versions) are alive."""
    settings = state.settings
    try:
        with state.engine.connect() as conn:
            rows = workers.list_workers(conn, ttl_seconds=settings.queues.heartbeat_ttl_seconds)
    except Exception as exc:  # the health endpoint must answer even when the DB does not
        body = Health(
            ok=False,
            role="api",
            appVersion=settings.topology.app_version,
            database=f"error: {exc}",
            workers=[],
        )
        return JSONResponse(body.model_dump(), status_code=503)
    views = [
        WorkerView(
            executorId=row.executor_id,
            appVersion=row.app_version,
            pid=row.pid,
            hostname=row.hostname,
            startedAt=iso(row.started_at) or "",
            heartbeatAt=iso(row.heartbeat_at) or "",
            alive=row.alive,
        )
        for row in rows
    ]
    gap = app_version_gap(rows, settings.topology.app_version)
    body = Health(
        ok=True,
        role="api",
        appVersion=settings.topology.app_version,
        database="ok",
        workers=views,
        warnings=[gap] if gap else [],
    )
    return JSONResponse(body.model_dump())
