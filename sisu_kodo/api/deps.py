"""Request dependencies: the shared resources a route needs, as Annotated aliases.

Every route but /healthz names the permission it needs with one of the `*Dep` caller
aliases below; the dependency identifies the caller, refuses (401/403) with an audit
row of its own, and hands the route a `Caller` to bind tenants and audit with.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Annotated, NoReturn

import sqlalchemy as sa
from fastapi import Depends, Request

from sisu_kodo.api.gateway import UnitOfWork, WorkflowGateway
from sisu_kodo.auth import ANONYMOUS, NOBODY, Action, Principal, identify
from sisu_kodo.blobs import BlobStore
from sisu_kodo.config import Settings
from sisu_kodo.db import audit
from sisu_kodo.errors import AppError, ForbiddenError, UnauthenticatedError


@dataclass(frozen=True)
class ApiState:
    settings: Settings
    engine: sa.Engine
    gateway: WorkflowGateway
    blobs: BlobStore
    system_engine: sa.Engine | None = None  # DBOS's system database, when not `engine`'s

    @property
    def system(self) -> sa.Engine:
        """An engine on DBOS's system database (workflow_status), by default `engine`."""
        return self.system_engine or self.engine


def get_state(request: Request) -> ApiState:
    state: ApiState = request.app.state.api
    return state


StateDep = Annotated[ApiState, Depends(get_state)]


@dataclass
class Caller:
    """The authenticated principal of one request, and what its audit row needs."""

    principal: Principal
    action: str  # "POST /runs/{run_id}/approve-plan": the route, not the concrete path
    target: str | None  # from the path; a route creating an id sets it before commit
    request_id: str
    client_addr: str | None

    def record(self, conn: sa.Connection, *, status: int, code: str | None = None) -> None:
        """Append this request's audit row, in the caller's transaction."""
        audit.append(
            conn,
            audit.AuditRecord(
                principal=self.principal.id,
                principal_name=self.principal.name,
                action=self.action,
                target=self.target,
                status=status,
                code=code,
                request_id=self.request_id,
                client_addr=self.client_addr,
            ),
        )


# The caller of service functions called in-process (no request): auth off's anonymous.
IN_PROCESS = Caller(ANONYMOUS, "in-process", None, "in-process", None)


def _describe(request: Request) -> tuple[str, str | None]:
    route = request.scope.get("route")
    path = getattr(route, "path", request.url.path)
    params = request.path_params
    target = (
        params.get("run_id")
        or params.get("intent_id")
        or params.get("key_id")
        or params.get("webhook_id")
    )
    return f"{request.method} {path}", target


def requires(action: Action) -> Callable[[Request, ApiState], Caller]:
    """A dependency admitting callers whose roles grant `action` (tenants are checked by
    the service, which answers 404 for what a caller may not see)."""

    def dependency(request: Request, state: StateDep) -> Caller:
        name, target = _describe(request)
        caller = Caller(
            NOBODY, name, target, uuid.uuid4().hex, request.client.host if request.client else None
        )
        try:
            with state.engine.begin() as conn:
                principal = identify(conn, state.settings, request.headers.get("authorization"))
        except UnauthenticatedError as denied:
            deny(state, caller, denied)
        caller = replace(caller, principal=principal)
        if not principal.can(action):
            deny(state, caller, not_allowed(principal, action))
        return caller

    dependency.__name__ = f"requires_{action.value}"
    return dependency


def not_allowed(principal: Principal, action: Action) -> ForbiddenError:
    """The 403 of a principal whose roles do not grant `action`."""
    return ForbiddenError(
        f"key {principal.id} ({principal.name}) may not {action.value}", {"needs": action.value}
    )


def deny(state: ApiState, caller: Caller, denied: AppError) -> NoReturn:
    """Audit the refusal in its own transaction (the request writes nothing else), then raise."""
    with state.engine.begin() as conn:
        caller.record(conn, status=denied.http_status, code=denied.code)
    raise denied


@contextmanager
def audited_unit(state: ApiState, caller: Caller, *, status: int) -> Iterator[UnitOfWork]:
    """The request's unit of work, committing its audit row with it; a 403 the service
    raises (tenant, self-approval) rolls the unit back and is audited on its own."""
    try:
        with state.gateway.unit_of_work(state.engine) as unit:
            yield unit
            caller.record(unit.conn, status=status)
    except ForbiddenError as denied:
        deny(state, caller, denied)


ReaderDep = Annotated[Caller, Depends(requires(Action.READ))]
SubmitterDep = Annotated[Caller, Depends(requires(Action.SUBMIT))]
DeciderDep = Annotated[Caller, Depends(requires(Action.DECIDE))]
OperatorDep = Annotated[Caller, Depends(requires(Action.OPERATE))]
AuditorDep = Annotated[Caller, Depends(requires(Action.AUDIT))]
KeyAdminDep = Annotated[Caller, Depends(requires(Action.KEYS))]
WebhookAdminDep = Annotated[Caller, Depends(requires(Action.WEBHOOKS))]
