"""ASGI middleware."""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

_JSON = b"application/json"


class AssumeJsonBodies:
    """Treat every request body as JSON, whatever Content-Type it declares.

    The manual's curl commands send `-d '{...}'` with no header, which curl labels
    `application/x-www-form-urlencoded`; this API only speaks JSON, so it reads them
    as JSON (malformed JSON still gets a 400 validation_error).
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] in ("POST", "PUT", "PATCH"):
            headers = [(k, v) for k, v in scope["headers"] if k != b"content-type"]
            headers.append((b"content-type", _JSON))
            scope = {**scope, "headers": headers}
        await self.app(scope, receive, send)
