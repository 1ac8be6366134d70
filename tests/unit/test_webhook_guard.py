"""The SSRF guard and the signing: where webhook URLs may point, and signatures a
Standard Webhooks verifier (the `standardwebhooks` package) accepts."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from standardwebhooks import Webhook

from sisu_kodo.config import NotifySettings
from sisu_kodo.errors import WebhookUrlRefusedError
from sisu_kodo.notify.signing import new_secret, signed_headers
from sisu_kodo.notify.ssrf import check_url

STRICT = NotifySettings()
LOOPBACK = NotifySettings(allow_loopback=True)
PRIVATE = NotifySettings(allow_private=True)


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://169.254.169.254/latest/meta-data", "metadata"),
        ("http://[fd00:ec2::254]/", "metadata"),
        ("http://100.100.100.200/", "metadata"),
        ("http://169.254.10.1/", "private"),
        ("http://10.0.0.5/hook", "private"),
        ("http://192.168.1.1/hook", "private"),
        ("http://100.64.0.1/hook", "private"),
        ("http://[fe80::1]/hook", "private"),
        ("http://127.0.0.1:8080/hook", "loopback"),
        ("http://localhost/hook", "loopback"),
        ("http://[::1]/hook", "loopback"),
        ("http://[::ffff:127.0.0.1]/hook", "loopback"),
        ("http://0.0.0.0/hook", "reserved"),
        ("ftp://example.com/hook", "scheme"),
        ("http:///nohost", "scheme"),
        ("https://user:pw@example.com/hook", "credentials"),
        ("https://example.com:99999/hook", "port"),
    ],
)
def test_refused_by_default(url: str, reason: str) -> None:
    with pytest.raises(WebhookUrlRefusedError) as refused:
        check_url(url, STRICT)
    assert refused.value.details[0]["reason"] == reason


def test_settings_open_loopback_and_private_but_never_metadata() -> None:
    check_url("http://127.0.0.1:8080/hook", LOOPBACK)
    check_url("http://localhost/hook", LOOPBACK)
    check_url("http://10.0.0.5/hook", PRIVATE)
    check_url("http://169.254.10.1/hook", PRIVATE)
    with pytest.raises(WebhookUrlRefusedError):
        check_url("http://10.0.0.5/hook", LOOPBACK)
    with pytest.raises(WebhookUrlRefusedError):
        check_url("http://127.0.0.1/hook", PRIVATE)
    with pytest.raises(WebhookUrlRefusedError):
        check_url(
            "http://169.254.169.254/", NotifySettings(allow_private=True, allow_loopback=True)
        )


def test_public_addresses_and_names_pass_without_resolving() -> None:
    check_url("https://93.184.216.34/hook", STRICT)
    check_url("https://hooks.example.com/sisu?x=1", STRICT)


def test_signatures_verify_with_the_standard_webhooks_package() -> None:
    secret = new_secret()
    body = '{"type":"run.approved","data":{}}'
    headers = signed_headers(secret, webhook_id="msg_1", at=datetime.now(UTC), body=body)
    assert Webhook(secret).verify(body, headers) == {"type": "run.approved", "data": {}}
    assert secret.startswith("whsec_") and new_secret() != secret
