"""Whether auth is on, and who a request's bearer key says it is."""

from __future__ import annotations

import ipaddress
from datetime import UTC, datetime

import sqlalchemy as sa

from sisu_kodo.auth.principals import ANONYMOUS, Principal
from sisu_kodo.auth.tokens import Token, new_server_secret, parse_token, secret_matches
from sisu_kodo.config import AuthMode, ConfigError, Settings
from sisu_kodo.contracts.keys import Role
from sisu_kodo.db import api_keys
from sisu_kodo.errors import UnauthenticatedError

# Compared against when the key id is unknown, so an unknown id costs the same time.
_DUMMY_HASH = "0" * 64


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(settings: Settings) -> None:
    """Fail closed: auth off on an address others can reach is a configuration error."""
    host = settings.topology.host
    if settings.api.auth is AuthMode.OFF and not is_loopback(host):
        raise ConfigError(
            f"SISU_AUTH=off with SISU_HOST={host} (not loopback) would let anyone on the network"
            " act without a key; set SISU_AUTH=auto or on, or bind SISU_HOST=127.0.0.1"
        )


def auth_required(conn: sa.Connection, settings: Settings) -> bool:
    """on: always; off: never; auto: once a key exists, or when bound beyond loopback."""
    mode = settings.api.auth
    if mode is not AuthMode.AUTO:
        return mode is AuthMode.ON
    return not is_loopback(settings.topology.host) or api_keys.any_key_exists(conn)


def identify(conn: sa.Connection, settings: Settings, authorization: str | None) -> Principal:
    """The caller behind an `Authorization: Bearer sk_...` header (anonymous with auth off).

    Raises:
        UnauthenticatedError: auth is on and the key is missing, malformed, unknown,
            expired or revoked. The message never repeats the key.
    """
    if not auth_required(conn, settings):
        return ANONYMOUS
    token = _bearer(authorization)
    if token is None:
        raise UnauthenticatedError("an API key is required: Authorization: Bearer sk_<id>_<secret>")
    row = api_keys.read_key(conn, key_id=token.key_id)
    secret = api_keys.server_secret(conn, new=new_server_secret())
    if not secret_matches(secret, token, row.secret_hash if row else _DUMMY_HASH) or row is None:
        raise UnauthenticatedError("unknown API key")
    return _active_principal(conn, row)


def identify_key(conn: sa.Connection, key_id: str) -> Principal:
    """The principal of a key proven earlier (the console's signed session names it),
    if the key is still usable.

    Raises:
        UnauthenticatedError: the key is unknown, expired or revoked.
    """
    row = api_keys.read_key(conn, key_id=key_id)
    if row is None:
        raise UnauthenticatedError("unknown API key")
    return _active_principal(conn, row)


def _active_principal(conn: sa.Connection, row: api_keys.KeyRow) -> Principal:
    if row.revoked_at is not None:
        raise UnauthenticatedError(f"API key {row.id} is revoked", {"keyId": row.id})
    if row.expires_at is not None and row.expires_at <= datetime.now(UTC):
        raise UnauthenticatedError(f"API key {row.id} has expired", {"keyId": row.id})
    api_keys.touch_key(conn, key_id=row.id)
    return Principal(
        row.id, row.name, frozenset(Role(r) for r in row.roles), frozenset(row.tenants)
    )


def _bearer(authorization: str | None) -> Token | None:
    if not authorization:
        return None
    scheme, _, value = authorization.strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    return parse_token(value.strip())
