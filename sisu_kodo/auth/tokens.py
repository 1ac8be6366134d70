"""Key tokens `sk_<id>_<secret>`: made with `secrets`, stored as an HMAC-SHA256, compared
in constant time. The id is public (it names the key in lists and the audit log)."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

PREFIX = "sk_"
_TOKEN = re.compile(r"^sk_(?P<id>[0-9a-f]{12})_(?P<secret>[A-Za-z0-9_-]{43})$")


@dataclass(frozen=True)
class Token:
    key_id: str
    secret: str

    def __str__(self) -> str:
        return f"{PREFIX}{self.key_id}_{self.secret}"

    def __repr__(self) -> str:  # never print the secret by accident
        return f"Token(key_id={self.key_id!r}, secret=...)"


def new_token() -> Token:
    """A fresh key: 48 random bits of public id, 256 random bits of secret."""
    return Token(secrets.token_hex(6), secrets.token_urlsafe(32))


def parse_token(text: str) -> Token | None:
    found = _TOKEN.match(text)
    return Token(found["id"], found["secret"]) if found else None


def hash_secret(server_secret: bytes, token: Token) -> str:
    """The keyed hash stored for `token`: useless without the server's secret."""
    message = f"{token.key_id}:{token.secret}".encode()
    return hmac.new(server_secret, message, hashlib.sha256).hexdigest()


def secret_matches(server_secret: bytes, token: Token, stored_hash: str) -> bool:
    return hmac.compare_digest(hash_secret(server_secret, token), stored_hash)


def new_server_secret() -> bytes:
    return secrets.token_bytes(32)
