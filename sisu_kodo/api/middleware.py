"""ASGI middleware: what is refused at the door, before any route runs or anything is read
beyond what is needed to refuse it."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sisu_kodo.api.bodies import check_json_body
from sisu_kodo.api.errors import STATE_CHANGING_METHODS, error_response
from sisu_kodo.api.origins import SiteAllowlist
from sisu_kodo.errors import AppError, PayloadTooLargeError

_JSON = b"application/json"
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


class ServerTiming:
    """Stamp each answer with `Server-Timing: app;dur=<ms>`, the time from the request
    reaching the app to its answer starting: what benchmarks call server-side time
    (bench/run_list.py), without the client's or the network's share."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()

        async def timed(message: Message) -> None:
            if message["type"] == "http.response.start":
                elapsed_ms = (time.perf_counter() - started) * 1000
                MutableHeaders(scope=message).append("Server-Timing", f"app;dur={elapsed_ms:.2f}")
            await send(message)

        await self.app(scope, receive, timed)


class BrowserGuard:
    """Refuse requests a hostile page in an operator's browser could make: a Host that is
    not ours (DNS rebinding), and state changes from another site's page (CSRF)."""

    def __init__(self, app: ASGIApp, *, sites: SiteAllowlist) -> None:
        self.app = app
        self.sites = sites

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            headers = Headers(scope=scope)
            try:
                self.sites.check_host(headers.get("host"))
                if scope["method"] in STATE_CHANGING_METHODS:
                    self.sites.check_origin(headers.get("origin"), headers.get("sec-fetch-site"))
            except AppError as exc:
                await error_response(exc)(scope, receive, send)
                return
        await self.app(scope, receive, send)


@dataclass(frozen=True)
class RawBodies:
    """A route whose body is not JSON (an upload) and its own size cap. Its body is capped
    as it streams in, like any other, but not parsed here: it is handed on with the
    Content-Type the client gave, and the route (after authentication) checks it."""

    max_bytes: int
    setting: str  # the variable that sets max_bytes, for the 413's message


class StrictJsonBodies:
    """Read each request body once, at most `max_bytes` of it, check that it is strict JSON
    (api/bodies.py) and hand it on labelled JSON, whatever Content-Type it declared.
    Routes listed in `raw` (POST path -> RawBodies) take their own cap and media types;
    paths under `form_prefixes` (the console's HTML forms) the JSON cap, unparsed.

    The manual's curl commands send `-d '{...}'` with no header, which curl labels
    `application/x-www-form-urlencoded`; this API only speaks JSON, so it reads them as
    JSON. The size cap holds while the body streams in, with or without Content-Length:
    a body is never buffered past the cap, and a declared oversize one is refused unread.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_bytes: int,
        raw: Mapping[str, RawBodies] | None = None,
        form_prefixes: tuple[str, ...] = (),
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.raw = dict(raw or {})
        # Paths whose bodies are HTML forms (the console): capped, but not read as JSON.
        self.forms = RawBodies(max_bytes, _JSON_SETTING) if form_prefixes else None
        self.form_prefixes = form_prefixes

    def _raw_rule(self, scope: Scope) -> RawBodies | None:
        """The rule of a route whose body is not JSON, or None for JSON."""
        if scope["method"] == "POST" and scope["path"] in self.raw:
            return self.raw[scope["path"]]
        return self.forms if scope["path"].startswith(self.form_prefixes) else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in _BODY_METHODS:
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        raw = self._raw_rule(scope)
        cap, setting = (raw.max_bytes, raw.setting) if raw else (self.max_bytes, _JSON_SETTING)
        try:
            _check_declared_length(headers.get("content-length"), cap, setting)
            body = await _read_body(receive, cap, setting)
            if body and raw is None:
                check_json_body(body)
        except AppError as exc:
            await error_response(exc)(scope, receive, send)
            return
        if body is None:  # the client left before sending its body: nobody to answer
            return
        labelled = scope if raw is not None else _labelled_json(scope)
        await self.app(labelled, _replay(body, receive), send)


_JSON_SETTING = "SISU_MAX_BODY_BYTES"


def _check_declared_length(declared: str | None, cap: int, setting: str) -> None:
    if declared is not None and declared.isdigit() and int(declared) > cap:
        raise _too_large(f"Content-Length {declared}", cap, setting)


async def _read_body(receive: Receive, cap: int, setting: str) -> bytes | None:
    body = bytearray()
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        body += message.get("body", b"")
        if len(body) > cap:
            raise _too_large(f"more than {cap} bytes", cap, setting)
        if not message.get("more_body", False):
            return bytes(body)


def _too_large(seen: str, cap: int, setting: str) -> PayloadTooLargeError:
    return PayloadTooLargeError(
        f"the request body is too large ({seen}); at most {cap} bytes ({setting})",
        {"maxBytes": cap},
    )


def _labelled_json(scope: Scope) -> Scope:
    headers = [(k, v) for k, v in scope["headers"] if k != b"content-type"]
    headers.append((b"content-type", _JSON))
    return {**scope, "headers": headers}


def _replay(body: bytes, receive: Receive) -> Receive:
    """A receive that gives the body read already, then the client's own messages
    (so routes still learn of a disconnect)."""
    delivered = False

    async def replay() -> Message:
        nonlocal delivered
        if delivered:
            return await receive()
        delivered = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay
