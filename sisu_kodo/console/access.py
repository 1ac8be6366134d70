"""Who is using the console and what they may do: the console's twin of api/deps.py.

Every console route names the permission it needs with `requires(Action...)` (or
`OPEN` for the login pages and static files). The dependency reads the signed session,
checks the CSRF token of a state-changing form, identifies the key the session names
and refuses (401/403) with an audit row of its own, exactly as the API's `requires`.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated

import sqlalchemy as sa
from fastapi import Depends, Request
from starlette.datastructures import FormData

from sisu_kodo.api.deps import ApiState, Caller, deny, not_allowed
from sisu_kodo.auth import ANONYMOUS, NOBODY, Action, Principal, auth_required, identify_key
from sisu_kodo.auth.tokens import new_server_secret
from sisu_kodo.console.sessions import ConsoleSession, SessionCodec
from sisu_kodo.db import api_keys
from sisu_kodo.errors import ForbiddenError, UnauthenticatedError

CSRF_FIELD = "csrf"


@dataclass
class ConsoleRuntime:
    """What the console shares across requests: the API's state and the session codec."""

    api_state: Callable[[], ApiState]
    codec: SessionCodec | None = None

    def state(self) -> ApiState:
        return self.api_state()

    def sessions(self, conn: sa.Connection) -> SessionCodec:
        if self.codec is None:  # the server secret lives in the database: read it once
            secret = api_keys.server_secret(conn, new=new_server_secret())
            max_age = self.state().settings.api.console_session_seconds
            self.codec = SessionCodec(secret, max_age_seconds=max_age)
        return self.codec


def runtime_of(request: Request) -> ConsoleRuntime:
    runtime: ConsoleRuntime = request.app.state.console
    return runtime


@dataclass
class Visitor:
    """One console request's caller: its principal (in `caller`), its session, and
    whether that session is new (the response must set its cookie)."""

    caller: Caller
    session: ConsoleSession
    auth_on: bool
    codec: SessionCodec
    new_session: bool = False

    @property
    def principal(self) -> Principal:
        return self.caller.principal

    def can(self, action: Action) -> bool:
        return self.principal.can(action)


async def posted_form(request: Request) -> FormData | None:
    """The form of a POST (parsed once; the route's Form fields reuse it)."""
    return await request.form() if request.method == "POST" else None


FormDep = Annotated[FormData | None, Depends(posted_form)]


def _describe(request: Request) -> tuple[str, str | None]:
    route = request.scope.get("route")
    path = getattr(route, "path", request.url.path)
    params = request.path_params
    target = params.get("run_id") or params.get("key_id")
    return f"{request.method} /console{path}", target


def _caller(request: Request) -> Caller:
    name, target = _describe(request)
    client = request.client.host if request.client else None
    return Caller(NOBODY, name, target, uuid.uuid4().hex, client)


def _check_csrf(
    state: ApiState, caller: Caller, session: ConsoleSession | None, form: FormData | None
) -> None:
    """A state-changing form must carry its session's token: a forged one is refused."""
    offered = form.get(CSRF_FIELD) if form is not None else None
    if session is None or not session.csrf_matches(offered if isinstance(offered, str) else None):
        deny(state, caller, ForbiddenError("the form's CSRF token does not match this session"))


def _visit(request: Request, form: FormData | None, action: Action | None) -> Visitor:
    runtime = runtime_of(request)
    state = runtime.state()
    caller = _caller(request)
    with state.engine.begin() as conn:
        codec = runtime.sessions(conn)
        on = auth_required(conn, state.settings)
    session = codec.read(request)
    if request.method == "POST":
        _check_csrf(state, caller, session, form)
    principal = NOBODY
    if not on:
        principal = ANONYMOUS
    elif action is not None:
        try:
            if session is None or session.key_id is None:
                raise UnauthenticatedError("log in with an API key")
            with state.engine.begin() as conn:
                principal = identify_key(conn, session.key_id)
        except UnauthenticatedError as denied:
            deny(state, caller, denied)
    caller.principal = principal
    if action is not None and not principal.can(action):
        deny(state, caller, not_allowed(principal, action))
    if session is None:
        return Visitor(caller, ConsoleSession.fresh(), on, codec, new_session=True)
    return Visitor(caller, session, on, codec)


def requires(action: Action | None) -> Callable[[Request, FormData | None], Visitor]:
    """A dependency admitting visitors whose roles grant `action` (None: anyone, for the
    login pages; a POST still needs its CSRF token)."""

    def dependency(request: Request, form: FormDep) -> Visitor:
        return _visit(request, form, action)

    dependency.__name__ = f"console_requires_{action.value if action else 'nothing'}"
    return dependency


AnyoneDep = Annotated[Visitor, Depends(requires(None))]
ReaderDep = Annotated[Visitor, Depends(requires(Action.READ))]
DeciderDep = Annotated[Visitor, Depends(requires(Action.DECIDE))]
OperatorDep = Annotated[Visitor, Depends(requires(Action.OPERATE))]
AuditorDep = Annotated[Visitor, Depends(requires(Action.AUDIT))]
KeyAdminDep = Annotated[Visitor, Depends(requires(Action.KEYS))]
