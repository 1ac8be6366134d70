"""Key management, shared by `sisu keys` (database access) and the admin routes /keys."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from sisu_kodo.auth.tokens import hash_secret, new_server_secret, new_token
from sisu_kodo.contracts.keys import ALL_TENANTS, KeyCreate, KeyCreated, KeyView
from sisu_kodo.db import api_keys
from sisu_kodo.errors import InvalidRequestError, NotFoundError

_UNITS = {"d": "days", "h": "hours", "m": "minutes"}


def lifetime(text: str) -> timedelta:
    """`30d`, `12h` or `90m` as a timedelta."""
    unit = _UNITS.get(text[-1:])
    if unit is None or not text[:-1].isdigit() or int(text[:-1]) <= 0:
        raise InvalidRequestError(
            f"invalid expiry {text!r}: a positive number followed by d, h or m",
            [{"path": "expires", "message": "expected e.g. 30d, 12h or 90m"}],
        )
    return timedelta(**{unit: int(text[:-1])})


def issue_key(conn: sa.Connection, body: KeyCreate, *, created_by: str) -> KeyCreated:
    """Create a key; the returned `key` is the only time its secret is seen."""
    tenants = sorted({tenant.strip() for tenant in body.tenants})
    if "" in tenants:
        raise InvalidRequestError(
            "a tenant may not be blank", [{"path": "tenants", "message": "blank tenant"}]
        )
    if ALL_TENANTS in tenants:
        tenants = [ALL_TENANTS]
    expires_at = datetime.now(UTC) + lifetime(body.expires) if body.expires else None
    token = new_token()
    secret = api_keys.server_secret(conn, new=new_server_secret())
    row = api_keys.create_key(
        conn,
        key_id=token.key_id,
        name=body.name.strip(),
        roles=sorted({role.value for role in body.roles}),
        tenants=tenants,
        secret_hash=hash_secret(secret, token),
        created_by=created_by,
        expires_at=expires_at,
    )
    return KeyCreated(**key_view(row).model_dump(), key=str(token))


def revoke_key(conn: sa.Connection, *, key_id: str) -> KeyView:
    row = api_keys.revoke_key(conn, key_id=key_id)
    if row is None:
        raise NotFoundError(f"key {key_id} not found", {"keyId": key_id})
    return key_view(row)


def list_key_views(conn: sa.Connection) -> list[KeyView]:
    return [key_view(row) for row in api_keys.list_keys(conn)]


def key_view(row: api_keys.KeyRow) -> KeyView:
    def iso(at: datetime | None) -> str | None:
        return at.isoformat() if at else None

    return KeyView(
        id=row.id,
        name=row.name,
        roles=row.roles,
        tenants=row.tenants,
        createdBy=row.created_by,
        createdAt=row.created_at.isoformat(),
        expiresAt=iso(row.expires_at),
        revokedAt=iso(row.revoked_at),
        lastUsedAt=iso(row.last_used_at),
    )
