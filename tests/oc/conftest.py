"""A real `opencode serve` (the pinned npm `opencode-ai`) against the stub model, for the session.

The package is installed once into ~/.cache/sisu-kodo/opencode (reused across runs). If
npm cannot install it, every test here FAILS with the reason: none is skipped silently.
Both the stub and the server listen on 127.0.0.1 only; the server is stopped by its pid.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from sisu_kodo.cli.stack import free_port
from sisu_kodo.config import Settings, load_settings
from sisu_kodo.oc.daemon import DaemonError, install_opencode, start_daemon, stop_daemon
from tests.oc.stub_model import StubModel

CACHE_DIR = Path.home() / ".cache" / "sisu-kodo" / "opencode"
PROVIDER = "stub"
MODEL = "stub-planner"
API_KEY = "stub-key"


@dataclass
class OpenCodeServer:
    url: str
    password: str
    stub: StubModel
    settings: Settings

    def env(self, **overrides: str) -> dict[str, str]:
        """What a worker needs to plan live through this server."""
        return {
            "OC_MODE": "live",
            "OC_BASE_URL": self.url,
            "OC_SERVER_PASSWORD": self.password,
            "OC_PROVIDER": PROVIDER,
            "OC_MODEL": MODEL,
            "OC_PROVIDER_BASE_URL": self.stub.base_url,
            "OC_PROVIDER_API_KEY": API_KEY,
            "OC_STARTUP_TIMEOUT_SECONDS": "10",
            "OC_REQUEST_TIMEOUT_SECONDS": "20",
            "OC_CACHE_DIR": str(CACHE_DIR),
            **overrides,
        }

    def settings_with(self, **overrides: str) -> Settings:
        return load_settings(**self.env(**overrides))


@pytest.fixture(scope="session")
def opencode(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OpenCodeServer]:
    stub = StubModel().start()
    password = secrets.token_urlsafe(16)
    port = free_port()
    settings = load_settings(
        OC_MODE="live",
        OC_SERVER_PORT=str(port),
        OC_SERVER_PASSWORD=password,
        OC_PROVIDER=PROVIDER,
        OC_MODEL=MODEL,
        OC_PROVIDER_BASE_URL=stub.base_url,
        OC_PROVIDER_API_KEY=API_KEY,
        OC_CACHE_DIR=str(CACHE_DIR),
        SISU_DATA_DIR=str(tmp_path_factory.mktemp("opencode-daemon")),
    )
    try:
        try:
            install_opencode(settings)
            status = start_daemon(settings)
        except DaemonError as exc:
            pytest.fail(f"cannot run the real OpenCode server for these tests: {exc}")
        server = OpenCodeServer(status.url, password, stub, settings)
        yield server
    finally:
        stop_daemon(settings)
        stub.stop()


@pytest.fixture
def stub(opencode: OpenCodeServer) -> Iterator[StubModel]:
    """The shared stub, back to well-behaved after each test."""
    opencode.stub.reset()
    yield opencode.stub
    opencode.stub.reset()
