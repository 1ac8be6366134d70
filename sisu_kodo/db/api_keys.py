"""API keys and the server-side secret their hashes are keyed with."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

_SECRET_NAME = "api_keys"


@dataclass(frozen=True)
class KeyRow:
    id: str
    name: str
    roles: list[str]
    tenants: list[str]
    secret_hash: str
    created_by: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None


_COLUMNS = (
    "id, name, roles, tenants, secret_hash, created_by, created_at, expires_at,"
    " revoked_at, last_used_at"
)


def server_secret(conn: sa.Connection, *, new: bytes) -> bytes:
    """The HMAC key of every key hash; `new` becomes it when there is none yet."""
    conn.execute(
        sa.text(
            "INSERT INTO app.auth_secrets (name, secret) VALUES (:name, :secret)"
            " ON CONFLICT (name) DO NOTHING"
        ),
        {"name": _SECRET_NAME, "secret": new},
    )
    secret: bytes = conn.execute(
        sa.text("SELECT secret FROM app.auth_secrets WHERE name = :name"), {"name": _SECRET_NAME}
    ).scalar_one()
    return bytes(secret)


def create_key(
    conn: sa.Connection,
    *,
    key_id: str,
    name: str,
    roles: list[str],
    tenants: list[str],
    secret_hash: str,
    created_by: str,
    expires_at: datetime | None,
) -> KeyRow:
    row = conn.execute(
        sa.text(
            "INSERT INTO app.api_keys (id, name, roles, tenants, secret_hash, created_by,"
            " expires_at) VALUES (:id, :name, :roles, :tenants, :hash, :by, :expires)"
            f" RETURNING {_COLUMNS}"
        ),
        {
            "id": key_id,
            "name": name,
            "roles": roles,
            "tenants": tenants,
            "hash": secret_hash,
            "by": created_by,
            "expires": expires_at,
        },
    ).one()
    return KeyRow(*row)


def read_key(conn: sa.Connection, *, key_id: str) -> KeyRow | None:
    row = conn.execute(
        sa.text(f"SELECT {_COLUMNS} FROM app.api_keys WHERE id = :id"), {"id": key_id}
    ).one_or_none()
    return KeyRow(*row) if row else None


def list_keys(conn: sa.Connection) -> list[KeyRow]:
    rows = conn.execute(sa.text(f"SELECT {_COLUMNS} FROM app.api_keys ORDER BY created_at, id"))
    return [KeyRow(*row) for row in rows]


def any_key_exists(conn: sa.Connection) -> bool:
    return bool(conn.execute(sa.text("SELECT EXISTS (SELECT 1 FROM app.api_keys)")).scalar_one())


def revoke_key(conn: sa.Connection, *, key_id: str) -> KeyRow | None:
    """Revoke (once: a second revoke keeps the first time); None for an unknown id."""
    row = conn.execute(
        sa.text(
            "UPDATE app.api_keys SET revoked_at = COALESCE(revoked_at, now()) WHERE id = :id"
            f" RETURNING {_COLUMNS}"
        ),
        {"id": key_id},
    ).one_or_none()
    return KeyRow(*row) if row else None


def touch_key(conn: sa.Connection, *, key_id: str) -> None:
    """Record use, at most once a minute per key, so reads do not write on every call."""
    conn.execute(
        sa.text(
            "UPDATE app.api_keys SET last_used_at = now() WHERE id = :id"
            " AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute')"
        ),
        {"id": key_id},
    )
