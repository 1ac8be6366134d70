from __future__ import annotations

import pytest

from sisu_kodo.config import (
    ConfigError,
    OcMode,
    SandboxMode,
    Settings,
    load_settings,
)


@pytest.fixture(autouse=True)
def clean_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "OC_BASE_URL",
        "OC_SERVER_PORT",
        "OC_MODE",
        "SB_MODE",
        "SBX_MODE",
        "SBX_PROVIDER",
        "PORT",
        "ADMIN_PORT",
        "DBOS__APPVERSION",
        "OC_STRICT_MODE",
        "DATABASE_URL",
    ):
        monkeypatch.delenv(name, raising=False)


def test_defaults_follow_the_manual() -> None:
    settings = load_settings()
    assert settings.oc_server_port == 4096
    assert settings.opencode_url == "http://127.0.0.1:4096"
    assert settings.oc_mode is OcMode.REPLAY
    assert settings.sb_mode is SandboxMode.MOCK
    assert settings.sbx_provider is None  # auto: e2b with E2B_API_KEY, else local
    assert (settings.port, settings.admin_port) == (3001, 3002)
    assert settings.app_version == "v1"
    assert settings.oc_strict_mode is False
    assert settings.database_url is None


def test_manual_section_0_exports(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {
        "OC_BASE_URL": "http://127.0.0.1:4096",
        "OC_SERVER_PORT": "4096",
        "OC_MODE": "live",
        "SB_MODE": "live",
        "SBX_PROVIDER": "e2b",
        "PORT": "3001",
        "ADMIN_PORT": "3002",
        "DBOS__APPVERSION": "v1",
        "OC_STRICT_MODE": "1",
    }.items():
        monkeypatch.setenv(name, value)
    settings = load_settings()
    assert settings.oc_mode is OcMode.LIVE and settings.sb_mode is SandboxMode.LIVE
    assert settings.oc_strict_mode is True


def test_sbx_mode_is_an_alias_of_sb_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SBX_MODE", "live")
    assert load_settings().sb_mode is SandboxMode.LIVE


@pytest.mark.parametrize(
    ("name", "value"),
    [("OC_MODE", "psychic"), ("PORT", "70000"), ("SB_MODE", "cloud"), ("OC_STRICT_MODE", "sure")],
)
def test_invalid_values_name_the_variable(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as caught:
        load_settings()
    message = str(caught.value)
    assert name in message and value in message and "\n" not in message


def test_empty_values_mean_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "")
    assert Settings().database_url is None
