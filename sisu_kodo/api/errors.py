"""The one place errors become HTTP responses: `{code, message, details?}`."""

from __future__ import annotations

import logging
import uuid
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from sisu_kodo.contracts.errors import ErrorBody
from sisu_kodo.errors import AppError, UnauthenticatedError

log = logging.getLogger(__name__)


def _body(status: int, code: str, message: str, details: Any = None) -> JSONResponse:
    return JSONResponse(
        ErrorBody(code=code, message=message, details=details).model_dump(exclude_none=True),
        status_code=status,
    )


def _field_path(loc: tuple[Any, ...]) -> str:
    parts = [str(part) for part in loc if part != "body"]
    return ".".join(parts) or "body"


def error_response(exc: AppError) -> JSONResponse:
    """The body of a 4xx AppError; middleware answers with it before any route runs."""
    response = _body(exc.http_status, exc.code, exc.message, exc.details)
    if isinstance(exc, UnauthenticatedError):
        response.headers["WWW-Authenticate"] = "Bearer"
    return response


async def _app_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, AppError)
    if exc.http_status >= 500:
        return await _unexpected(_, exc)
    return error_response(exc)


async def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems = [
        {"path": _field_path(tuple(error.get("loc", ()))), "message": error.get("msg", "")}
        for error in exc.errors()
    ]
    summary = "; ".join(f"{p['path']}: {p['message']}" for p in problems[:5])
    return _body(400, "validation_error", f"invalid request: {summary}", problems)


async def _http_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    codes = {404: "not_found", 405: "method_not_allowed"}
    return _body(exc.status_code, codes.get(exc.status_code, "http_error"), str(exc.detail))


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    correlation_id = uuid.uuid4().hex
    log.exception("unexpected error %s on %s %s", correlation_id, request.method, request.url.path)
    return _body(
        500,
        "internal",
        f"internal error; quote correlation id {correlation_id} to an operator",
        {"correlationId": correlation_id},
    )


_DESCRIPTIONS = {
    400: "validation_error, queue_policy_violation, host_not_allowed or webhook_url_refused;"
    " nothing was written",
    401: "unauthenticated: no valid API key (missing, malformed, unknown, expired or revoked)",
    403: "forbidden or self_approval_forbidden (the key's roles, tenants or duties), or"
    " origin_not_allowed (a state-changing request from another site's page)",
    404: "not_found",
    409: "illegal_state, retry_drift, run_identity_conflict or budget_exhausted;"
    " nothing was written",
    413: "payload_too_large: the body is longer than SISU_MAX_BODY_BYTES",
    500: "internal (with a correlation id)",
    503: "the database is unreachable",
}
# Methods whose requests change state: the ones middleware checks for Origin and body size.
STATE_CHANGING_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for a route's error statuses, all with the ErrorBody shape."""
    return {
        status: {"model": ErrorBody, "description": _DESCRIPTIONS[status]} for status in statuses
    }


def document_error_lattice(schema: dict[str, Any]) -> dict[str, Any]:
    """Say in the OpenAPI what the API really answers: 400 (not FastAPI's 422) for request
    validation and refused Host headers, 403 and 413 from the middleware on state-changing
    requests, and a possible 500 everywhere."""
    error_ref = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
    for path in schema.get("paths", {}).values():
        for method, operation in path.items():
            responses = operation.setdefault("responses", {})
            responses.pop("422", None)
            statuses = [400, 500]
            if method.upper() in STATE_CHANGING_METHODS:
                statuses += [403, 413]
            for status in statuses:
                responses.setdefault(
                    str(status), {"description": _DESCRIPTIONS[status], "content": error_ref}
                )
    components = schema.get("components", {}).get("schemas", {})
    for unused in ("HTTPValidationError", "ValidationError"):
        components.pop(unused, None)
    return schema


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(AppError, _app_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
