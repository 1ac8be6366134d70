"""The console's ASGI app, mounted by the API at /console: its routes, static files and
HTML error pages (the API's own answers stay JSON)."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import RedirectResponse, Response

from sisu_kodo.api.deps import ApiState
from sisu_kodo.console.access import ConsoleRuntime
from sisu_kodo.console.render import TEMPLATES
from sisu_kodo.console.routes import admin, boards, login, run
from sisu_kodo.errors import AppError, UnauthenticatedError

log = logging.getLogger(__name__)
STATIC = Path(__file__).parent / "static"
LOGIN = "/console/login"


def create_console(api_state: Callable[[], ApiState]) -> FastAPI:
    """The console over the API's state (the API's lifespan opens it, the console reads it)."""
    console = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
    console.state.console = ConsoleRuntime(api_state)
    console.mount("/static", StaticFiles(directory=STATIC), name="static")
    for module in (login, boards, run, admin):
        console.include_router(module.router)
    console.add_exception_handler(AppError, _app_error)
    console.add_exception_handler(RequestValidationError, _invalid_request)
    console.add_exception_handler(StarletteHTTPException, _http_error)
    console.add_exception_handler(Exception, _unexpected)
    return console


def error_page(request: Request, status: int, title: str, message: str) -> Response:
    return TEMPLATES.TemplateResponse(
        request,
        "error.html",
        {"visitor": None, "title": title, "message": message, "status": status},
        status_code=status,
    )


async def _app_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, AppError)
    if isinstance(exc, UnauthenticatedError) and request.method == "GET":
        # A page asked for without a session: log in, then come back here.
        return RedirectResponse(f"{LOGIN}?next={request.url.path}", status_code=303)
    message = exc.message
    if isinstance(exc.details, list):  # field problems: say which field and why
        message += ": " + "; ".join(
            f"{item.get('path')}: {item.get('message')}"
            for item in exc.details
            if isinstance(item, dict)
        )
    return error_page(request, exc.http_status, exc.code.replace("_", " "), message)


async def _invalid_request(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    problems = "; ".join(
        f"{'.'.join(str(p) for p in error['loc'][1:]) or 'request'}: {error['msg']}"
        for error in exc.errors()
    )
    return error_page(request, 400, "invalid request", problems)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    return error_page(
        request,
        exc.status_code,
        "not found" if exc.status_code == 404 else "error",
        str(exc.detail),
    )


async def _unexpected(request: Request, exc: Exception) -> Response:
    correlation = uuid.uuid4().hex
    log.exception("console request failed (correlationId %s)", correlation, exc_info=exc)
    return error_page(request, 500, "internal error", f"correlation id {correlation}")
