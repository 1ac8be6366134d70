"""Standard Webhooks signing (https://www.standardwebhooks.com), by the `standardwebhooks`
package: `webhook-id`, `webhook-timestamp`, `webhook-signature` (v1, HMAC-SHA256)."""

from __future__ import annotations

import base64
import secrets
from datetime import datetime

from standardwebhooks.webhooks import Webhook

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32


def new_secret() -> str:
    """A fresh signing secret in the spec's form: whsec_ + base64 of 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def signed_headers(secret: str, *, webhook_id: str, at: datetime, body: str) -> dict[str, str]:
    """The three headers of one attempt; `at` must be timezone-aware (UTC)."""
    signature = Webhook(secret).sign(msg_id=webhook_id, timestamp=at, data=body)
    return {
        "webhook-id": webhook_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": signature,
        "content-type": "application/json",
    }
