"""The API shim: FastAPI over the ledger; it enqueues workflows and reads, never runs them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.responses import RedirectResponse

from sisu_kodo.api.deps import ApiState
from sisu_kodo.api.errors import document_error_lattice, install_error_handlers
from sisu_kodo.api.gateway import WorkflowGateway
from sisu_kodo.api.middleware import BrowserGuard, ServerTiming, StrictJsonBodies
from sisu_kodo.api.origins import SiteAllowlist
from sisu_kodo.api.routes import (
    artifacts,
    audit,
    health,
    intents,
    keys,
    ops,
    runs,
    webhooks,
    workspaces,
)
from sisu_kodo.auth import check_bind
from sisu_kodo.blobs import create_blob_store
from sisu_kodo.config import Settings
from sisu_kodo.console import create_console
from sisu_kodo.db.databases import open_databases
from sisu_kodo.db.engine import same_database

CONSOLE = "/console"


def get_state_of(app: FastAPI) -> ApiState:
    state: ApiState = app.state.api
    return state


def create_app(settings: Settings) -> FastAPI:
    """Build the API for `settings`; its lifespan opens (and closes) the databases.

    Raises:
        ConfigError: auth is off on a non-loopback SISU_HOST (fail closed).
    """
    check_bind(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        with open_databases(settings) as databases:
            engine = databases.engine()
            databases.prepare(engine)
            atomic = same_database(databases.url, databases.system_url)
            gateway = WorkflowGateway(
                databases.settings, system_url=databases.system_url, atomic=atomic
            )
            app.state.api = ApiState(
                settings=databases.settings,
                engine=engine,
                gateway=gateway,
                blobs=create_blob_store(databases.settings),
                system_engine=None if atomic else databases.engine(system=True, pool_size=2),
            )
            try:
                yield
            finally:
                gateway.close()

    app = FastAPI(
        title="Sisu-Kodo",
        version="0.1.0",
        summary="Intent -> plan -> approval -> sandbox fan-out, durable on DBOS + PostgreSQL.",
        lifespan=lifespan,
    )
    # Added last runs first: the Host/Origin guard refuses before any body is read.
    app.add_middleware(
        StrictJsonBodies,
        max_bytes=settings.api.max_body_bytes,
        raw=workspaces.raw_bodies(settings),
        form_prefixes=(CONSOLE + "/",),
    )
    app.add_middleware(BrowserGuard, sites=SiteAllowlist.from_settings(settings))
    app.add_middleware(ServerTiming)  # outermost: its time covers the guards too
    install_error_handlers(app)
    # ops before runs: /runs/counts and /runs/bulk/... are not run ids.
    for module in (health, intents, ops, runs, artifacts, keys, audit, webhooks, workspaces):
        app.include_router(module.router)

    # The console: HTML pages over the same state and service functions, outside OpenAPI.
    app.mount(CONSOLE, create_console(lambda: get_state_of(app)))
    app.add_api_route(CONSOLE, lambda: RedirectResponse(CONSOLE + "/runs"), include_in_schema=False)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title, version=app.version, summary=app.summary, routes=app.routes
            )
            app.openapi_schema = document_error_lattice(schema)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app
