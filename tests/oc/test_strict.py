"""Strict mode: a live worker refuses to boot, with one line, rather than fall back."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from sisu_kodo.cli.stack import free_port
from tests.oc.conftest import OpenCodeServer

pytestmark = pytest.mark.integration

# Never reached: every refusal below must happen before the worker touches a database.
UNREACHABLE_DATABASE = "postgresql://nobody:nothing@127.0.0.1:9/none"


def boot_worker(tmp_path: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    inherited = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("OC_", "SISU_", "DATABASE")) and not k.endswith("_API_KEY")
    }
    return subprocess.run(
        [sys.executable, "-m", "sisu_kodo.cli.main", "worker"],
        env={
            **inherited,
            "DATABASE_URL": UNREACHABLE_DATABASE,
            "SISU_DATA_DIR": str(tmp_path / "data"),
            "ADMIN_PORT": str(free_port()),
            "OC_STRICT_MODE": "1",
            **env,
        },
        capture_output=True,
        text=True,
        timeout=60,
    )


def one_line(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 2, done.stdout + done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    return lines[0]


def test_refuses_to_boot_without_credentials(tmp_path: Path, opencode: OpenCodeServer) -> None:
    env = opencode.env()
    del env["OC_PROVIDER_API_KEY"]
    line = one_line(boot_worker(tmp_path, env))
    assert "OC_STRICT_MODE=1: no API key for OpenCode provider 'stub'" in line
    assert "OC_PROVIDER_API_KEY" in line


def test_refuses_to_boot_without_an_anthropic_key(tmp_path: Path) -> None:
    line = one_line(boot_worker(tmp_path, {"OC_MODE": "live", "OC_PROVIDER": "anthropic"}))
    assert "ANTHROPIC_API_KEY" in line


def test_refuses_to_boot_when_the_server_is_unreachable(
    tmp_path: Path, opencode: OpenCodeServer
) -> None:
    env = opencode.env(
        OC_BASE_URL=f"http://127.0.0.1:{free_port()}", OC_STARTUP_TIMEOUT_SECONDS="1"
    )
    line = one_line(boot_worker(tmp_path, env))
    assert "OpenCode is not healthy" in line and "unreachable" in line


def test_refuses_to_boot_with_a_wrong_server_password(
    tmp_path: Path, opencode: OpenCodeServer
) -> None:
    env = opencode.env(OC_SERVER_PASSWORD="wrong", OC_STARTUP_TIMEOUT_SECONDS="1")
    line = one_line(boot_worker(tmp_path, env))
    assert "OpenCode is not healthy" in line and "auth" in line


def test_refuses_to_boot_when_the_server_lacks_the_provider(
    tmp_path: Path, opencode: OpenCodeServer
) -> None:
    env = opencode.env(OC_PROVIDER="elsewhere")
    line = one_line(boot_worker(tmp_path, env))
    assert "has no provider 'elsewhere' (it has: stub)" in line
