"""The audit log (admin, operator) and key management (admin)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import Response
from pydantic import ValidationError

from sisu_kodo import auth
from sisu_kodo.api.deps import audited_unit
from sisu_kodo.api.paths import IdPath
from sisu_kodo.api.routes.audit import read_audit_page
from sisu_kodo.console.access import AuditorDep, KeyAdminDep, Visitor, runtime_of
from sisu_kodo.console.nav import nav_of
from sisu_kodo.console.render import html, redirect
from sisu_kodo.contracts.keys import KeyCreate, KeyCreated, Role

router = APIRouter()

FilterText = Annotated[str | None, Query(max_length=200, pattern=r"^[A-Za-z0-9_.:-]*$")]


@router.get("/audit")
def audit_page(
    request: Request,
    visitor: AuditorDep,
    runId: FilterText = None,
    principal: FilterText = None,
    since: Annotated[datetime | None, Query()] = None,
    cursor: Annotated[int | None, Query(ge=1, lt=2**63)] = None,
) -> Response:
    """GET /audit's page, with its filters as a form."""
    state = runtime_of(request).state()
    with state.engine.connect() as conn:
        page = read_audit_page(
            conn, target=runId or None, principal=principal or None, since=since, cursor=cursor
        )
        nav = nav_of(conn, visitor.principal, "audit")
    filters = {"runId": runId or "", "principal": principal or "", "since": since or ""}
    return html(request, visitor, "audit.html", nav=nav, page=page, filters=filters)


def _keys_page(
    request: Request,
    visitor: Visitor,
    *,
    created: KeyCreated | None = None,
    error: str | None = None,
    status: int = 200,
) -> Response:
    state = runtime_of(request).state()
    with state.engine.connect() as conn:
        keys = auth.list_key_views(conn)
        nav = nav_of(conn, visitor.principal, "keys")
    return html(
        request,
        visitor,
        "keys.html",
        status=status,
        nav=nav,
        keys=keys,
        roles=list(Role),
        created=created,
        error=error,
    )


@router.get("/keys")
def keys_page(request: Request, visitor: KeyAdminDep) -> Response:
    return _keys_page(request, visitor)


@router.post("/keys")
def create_key(
    request: Request,
    visitor: KeyAdminDep,
    name: Annotated[str, Form(max_length=200)] = "",
    roles: Annotated[list[str] | None, Form()] = None,
    tenants: Annotated[str, Form(max_length=4000)] = "",
    expires: Annotated[str, Form(max_length=10)] = "",
) -> Response:
    """POST /keys from a form; the answer shows the new key's secret, once."""
    try:
        body = KeyCreate(
            name=name,
            roles=[Role(role) for role in roles or []],
            tenants=[tenant.strip() for tenant in tenants.split(",") if tenant.strip()],
            expires=expires.strip() or None,
        )
    except (ValidationError, ValueError) as invalid:
        return _keys_page(request, visitor, error=_first_problem(invalid), status=400)
    state = runtime_of(request).state()
    with audited_unit(state, visitor.caller, status=201) as unit:
        created = auth.issue_key(unit.conn, body, created_by=visitor.principal.id)
        visitor.caller.target = created.id
    return _keys_page(request, visitor, created=created, status=201)


def _first_problem(invalid: ValidationError | ValueError) -> str:
    if isinstance(invalid, ValidationError):
        error = invalid.errors()[0]
        return f"{'.'.join(str(p) for p in error['loc']) or 'key'}: {error['msg']}"
    return str(invalid)


@router.post("/keys/{key_id}/revoke")
def revoke_key(key_id: IdPath, request: Request, visitor: KeyAdminDep) -> Response:
    """DELETE /keys/{id} from a form: the key answers 401 from now on."""
    state = runtime_of(request).state()
    with audited_unit(state, visitor.caller, status=303) as unit:
        auth.revoke_key(unit.conn, key_id=key_id)
    return redirect(request, visitor, "/console/keys")
