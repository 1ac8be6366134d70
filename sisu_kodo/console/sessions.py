"""The console's session: a signed (itsdangerous), HttpOnly, SameSite=Strict cookie that
holds a CSRF token and, once logged in, the id of the key that proved itself.

The key's secret is never stored: the login form proves it once (auth's `identify`), and
each later request re-reads the key by id, so a revoked or expired key ends its sessions.
The signing key is derived from the server secret in `app.auth_secrets`, so every API
process of one database accepts the same cookies, across restarts.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from itsdangerous import BadSignature, URLSafeTimedSerializer
from starlette.requests import Request
from starlette.responses import Response

COOKIE = "sisu_console"
COOKIE_PATH = "/console"
_SALT = "sisu-console-session"


@dataclass(frozen=True)
class ConsoleSession:
    csrf: str
    key_id: str | None  # None: not logged in (or auth off, where everyone is anonymous)

    @classmethod
    def fresh(cls, key_id: str | None = None) -> ConsoleSession:
        """A new session with a new CSRF token (login rotates both: no fixation)."""
        return cls(csrf=secrets.token_urlsafe(32), key_id=key_id)

    def csrf_matches(self, offered: str | None) -> bool:
        return offered is not None and hmac.compare_digest(offered.encode(), self.csrf.encode())


class SessionCodec:
    """Signs sessions into cookie values and reads them back, refusing forged or stale ones."""

    def __init__(self, server_secret: bytes, *, max_age_seconds: int) -> None:
        signing_key = hmac.new(server_secret, _SALT.encode(), hashlib.sha256).digest()
        self._serializer = URLSafeTimedSerializer(signing_key, salt=_SALT)
        self.max_age_seconds = max_age_seconds

    def dumps(self, session: ConsoleSession) -> str:
        return self._serializer.dumps({"csrf": session.csrf, "key": session.key_id})

    def loads(self, value: str | None) -> ConsoleSession | None:
        if not value:
            return None
        try:
            data = self._serializer.loads(value, max_age=self.max_age_seconds)
        except BadSignature:  # forged, tampered or expired (SignatureExpired is a subclass)
            return None
        if not isinstance(data, dict) or not isinstance(data.get("csrf"), str):
            return None
        key = data.get("key")
        return ConsoleSession(csrf=data["csrf"], key_id=key if isinstance(key, str) else None)

    def read(self, request: Request) -> ConsoleSession | None:
        return self.loads(request.cookies.get(COOKIE))

    def write(self, response: Response, request: Request, session: ConsoleSession) -> None:
        response.set_cookie(
            COOKIE,
            self.dumps(session),
            max_age=self.max_age_seconds,
            path=COOKIE_PATH,
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
        )
