"""Login with an API key, logout, and the console's front door."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from starlette.responses import Response

from sisu_kodo.auth import identify
from sisu_kodo.console.access import AnyoneDep, Visitor, runtime_of
from sisu_kodo.console.render import html, redirect
from sisu_kodo.console.sessions import ConsoleSession
from sisu_kodo.errors import UnauthenticatedError

router = APIRouter()

HOME = "/console/runs"
REFUSED = "That API key is unknown, malformed, expired or revoked."


def _safe_next(target: str | None) -> str:
    """Only a console path: a login link must not send the browser to another site."""
    if target and target.startswith("/console/") and not target.startswith("//"):
        return target
    return HOME


@router.get("/")
def front_door(request: Request, visitor: AnyoneDep) -> Response:
    return redirect(request, visitor, HOME)


@router.get("/login")
def login_form(request: Request, visitor: AnyoneDep, next: str | None = None) -> Response:
    """The login form (with auth off there is nothing to log in to)."""
    if not visitor.auth_on:
        return redirect(request, visitor, HOME)
    return html(request, visitor, "login.html", next=_safe_next(next), error=None)


@router.post("/login")
def log_in(
    request: Request,
    visitor: AnyoneDep,
    api_key: Annotated[str, Form(max_length=400)] = "",
    next: Annotated[str, Form(max_length=400)] = HOME,
) -> Response:
    """Prove a key once; the session then names the key (never its secret)."""
    state = runtime_of(request).state()
    try:
        with state.engine.begin() as conn:
            principal = identify(conn, state.settings, f"Bearer {api_key.strip()}")
    except UnauthenticatedError as denied:
        with state.engine.begin() as conn:
            visitor.caller.record(conn, status=denied.http_status, code=denied.code)
        # One answer for every refusal: the form is not the place to tell them apart.
        return html(
            request, visitor, "login.html", status=401, next=_safe_next(next), error=REFUSED
        )
    visitor.caller.principal = principal
    visitor.caller.target = principal.key_id
    with state.engine.begin() as conn:
        visitor.caller.record(conn, status=303)
    signed_in = Visitor(
        visitor.caller, ConsoleSession.fresh(principal.key_id), True, visitor.codec, True
    )
    return redirect(request, signed_in, _safe_next(next))


@router.post("/logout")
def log_out(request: Request, visitor: AnyoneDep) -> Response:
    """End the session: the cookie is replaced by a fresh, logged-out one."""
    state = runtime_of(request).state()
    if visitor.session.key_id is not None:
        visitor.caller.target = visitor.session.key_id
        with state.engine.begin() as conn:
            visitor.caller.record(conn, status=303)
    signed_out = Visitor(
        visitor.caller, ConsoleSession.fresh(), visitor.auth_on, visitor.codec, True
    )
    return redirect(request, signed_out, "/console/login")
