"""Routes: /healthz (open to anyone; details only for a key, or while auth is off)."""

from __future__ import annotations

import sqlalchemy as sa
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from sisu_kodo.api.deps import ApiState, StateDep
from sisu_kodo.api.errors import error_responses
from sisu_kodo.api.views import app_version_gap, worker_view
from sisu_kodo.auth import auth_required, identify
from sisu_kodo.contracts.health import Health
from sisu_kodo.db import workers
from sisu_kodo.errors import UnauthenticatedError

router = APIRouter(tags=["health"])

AUTH_OFF_WARNING = (
    "auth is off: anyone who reaches this port may act without a key"
    " (create one with `sisu keys create`; see SISU_AUTH)"
)


@router.get("/healthz", response_model=Health, responses=error_responses(503))
def healthz(request: Request, state: StateDep) -> JSONResponse:
    """Up, database reachable, and which workers (and app versions) are alive."""
    settings = state.settings
    try:
        with state.engine.begin() as conn:
            auth_on = auth_required(conn, settings)
            detailed = _detailed(conn, state, request.headers.get("authorization"))
            rows = workers.list_workers(conn, ttl_seconds=settings.queues.heartbeat_ttl_seconds)
    except Exception as exc:  # the health endpoint must answer even when the DB does not
        body = Health(
            ok=False,
            role="api",
            appVersion=settings.topology.app_version,
            database=f"error: {exc}",
            workers=[],
        )
        return JSONResponse(body.model_dump(exclude_none=True), status_code=503)
    gap = app_version_gap(rows, settings.topology.app_version)
    warnings = [warning for warning in (gap, None if auth_on else AUTH_OFF_WARNING) if warning]
    if not detailed:
        body = Health(
            ok=True,
            appVersion=settings.topology.app_version,
            workerReady=gap is None,
            warnings=warnings,
        )
        return JSONResponse(body.model_dump(exclude_none=True))
    views = [worker_view(row) for row in rows]
    body = Health(
        ok=True,
        role="api",
        appVersion=settings.topology.app_version,
        database="ok",
        workers=views,
        workerReady=gap is None,
        warnings=warnings,
    )
    return JSONResponse(body.model_dump(exclude_none=True))


def _detailed(conn: sa.Connection, state: ApiState, authorization: str | None) -> bool:
    """Workers and database details go to a valid key (any role), or to anyone with auth off."""
    try:
        identify(conn, state.settings, authorization)
    except UnauthenticatedError:
        return False
    return True
