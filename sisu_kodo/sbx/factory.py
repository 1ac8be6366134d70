"""Choose the sandbox provider from settings."""

from __future__ import annotations

from sisu_kodo.config import ConfigError, SandboxMode, Settings
from sisu_kodo.sbx.mock import MockSandboxProvider
from sisu_kodo.sbx.port import SandboxProvider


def create_provider(settings: Settings) -> SandboxProvider:
    if settings.sb_mode is SandboxMode.MOCK:
        return MockSandboxProvider(latency_ms=settings.mock_latency_ms)
    raise ConfigError(
        f"invalid SB_MODE={settings.sb_mode.value!r} with SBX_PROVIDER="
        f"{settings.sbx_provider.value!r}: no live sandbox provider is available in this build;"
        " set SB_MODE=mock"
    )
