"""Routes: /keys (admin): create a key (its secret shown once), list and revoke keys."""

from __future__ import annotations

from fastapi import APIRouter, status

from sisu_kodo import auth
from sisu_kodo.api.deps import KeyAdminDep, StateDep, audited_unit
from sisu_kodo.api.errors import error_responses
from sisu_kodo.api.paths import IdPath
from sisu_kodo.contracts.keys import KeyCreate, KeyCreated, KeyView

router = APIRouter(prefix="/keys", tags=["keys"])


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=KeyCreated,
    responses=error_responses(400, 401, 403),
)
def create_key(body: KeyCreate, state: StateDep, caller: KeyAdminDep) -> KeyCreated:
    """Create a key; `key` in the answer is the only time its secret is shown."""
    with audited_unit(state, caller, status=201) as unit:
        created = auth.issue_key(unit.conn, body, created_by=caller.principal.id)
        caller.target = created.id
        return created


@router.get("", response_model=list[KeyView], responses=error_responses(401, 403))
def list_keys(state: StateDep, caller: KeyAdminDep) -> list[KeyView]:
    """Every key, without secrets."""
    with state.engine.connect() as conn:
        return auth.list_key_views(conn)


@router.delete("/{key_id}", response_model=KeyView, responses=error_responses(401, 403, 404))
def revoke_key(key_id: IdPath, state: StateDep, caller: KeyAdminDep) -> KeyView:
    """Revoke a key: from now on it answers 401. Revoking twice keeps the first time."""
    with audited_unit(state, caller, status=200) as unit:
        return auth.revoke_key(unit.conn, key_id=key_id)
