"""Keys, the permission table and the auth modes, without a database."""

from __future__ import annotations

import subprocess
import sys

import pytest

from sisu_kodo.auth import PERMISSIONS, Action, check_bind, is_loopback
from sisu_kodo.auth.tokens import hash_secret, new_token, parse_token, secret_matches
from sisu_kodo.config import ConfigError, load_settings
from sisu_kodo.contracts.keys import Role


def test_a_token_round_trips_and_hides_its_secret_from_repr() -> None:
    token = new_token()
    text = str(token)
    assert text.startswith(f"sk_{token.key_id}_") and len(token.secret) == 43
    assert parse_token(text) == token
    assert token.secret not in repr(token)


@pytest.mark.parametrize(
    "text", ["", "sk_", "sk_short_secret", "pk_0123456789ab_" + "a" * 43, "sk_0123456789ab_x"]
)
def test_malformed_tokens_do_not_parse(text: str) -> None:
    assert parse_token(text) is None


def test_the_stored_hash_is_keyed_by_the_server_secret() -> None:
    token = new_token()
    stored = hash_secret(b"k" * 32, token)
    assert secret_matches(b"k" * 32, token, stored)
    assert not secret_matches(b"j" * 32, token, stored)
    assert token.secret not in stored


def test_every_role_has_a_row_and_only_admin_manages_keys() -> None:
    assert set(PERMISSIONS) == set(Role)
    assert [role for role in Role if Action.KEYS in PERMISSIONS[role]] == [Role.ADMIN]
    assert all(Action.READ in PERMISSIONS[role] for role in Role)


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("::1", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("10.1.2.3", False),
        ("example.com", False),
    ],
)
def test_loopback_hosts(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_auth_off_on_a_public_bind_is_a_config_error_naming_the_settings() -> None:
    with pytest.raises(ConfigError, match=r"SISU_AUTH=off with SISU_HOST=0\.0\.0\.0"):
        check_bind(load_settings(SISU_HOST="0.0.0.0", SISU_AUTH="off"))
    check_bind(load_settings(SISU_HOST="0.0.0.0", SISU_AUTH="auto"))
    check_bind(load_settings(SISU_HOST="127.0.0.1", SISU_AUTH="off"))


def test_sisu_api_refuses_to_start_with_auth_off_on_a_public_bind(tmp_path: object) -> None:
    env = {
        "PATH": "/usr/bin:/bin",
        "SISU_HOST": "0.0.0.0",
        "SISU_AUTH": "off",
        "DATABASE_URL": "postgresql://nobody@127.0.0.1:1/never",  # never reached
        "SISU_DATA_DIR": str(tmp_path),
    }
    done = subprocess.run(
        [sys.executable, "-m", "sisu_kodo.cli.main", "api"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "SISU_AUTH=off" in lines[0] and "SISU_HOST=0.0.0.0" in lines[0]


def test_the_metrics_token_must_match_exactly() -> None:
    from sisu_kodo.worker.admin import _bearer_matches

    assert _bearer_matches("Bearer s3cret", "s3cret")
    assert _bearer_matches("bearer s3cret", "s3cret")
    assert not _bearer_matches("Bearer s3cre", "s3cret")
    assert not _bearer_matches("Basic s3cret", "s3cret")
    assert not _bearer_matches(None, "s3cret")
