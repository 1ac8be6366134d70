from __future__ import annotations

import pytest

from sisu_kodo.config import (
    ConfigError,
    IsolationChoice,
    OcMode,
    SandboxMode,
    SandboxProviderName,
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
        "SBX_FALLBACK",
        "SBX_LOCAL_ISOLATION",
        "SBX_LOCAL_UID",
    ):
        monkeypatch.delenv(name, raising=False)


def test_defaults_follow_the_manual() -> None:
    settings = load_settings()
    assert settings.planner.oc_server_port == 4096
    assert settings.planner.opencode_url == "http://127.0.0.1:4096"
    assert settings.planner.oc_mode is OcMode.REPLAY
    assert settings.sandboxes.sb_mode is SandboxMode.MOCK
    assert settings.sandboxes.sbx_provider is None  # auto: e2b with E2B_API_KEY, else local
    assert (settings.topology.port, settings.topology.admin_port) == (3001, 3002)
    assert settings.topology.app_version == "v1"
    assert settings.planner.oc_strict_mode is False
    assert settings.topology.database_url is None


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
    assert (
        settings.planner.oc_mode is OcMode.LIVE and settings.sandboxes.sb_mode is SandboxMode.LIVE
    )
    assert settings.planner.oc_strict_mode is True


def test_sbx_mode_is_an_alias_of_sb_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SBX_MODE", "live")
    assert load_settings().sandboxes.sb_mode is SandboxMode.LIVE


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("OC_MODE", "psychic"),
        ("PORT", "70000"),
        ("SB_MODE", "cloud"),
        ("OC_STRICT_MODE", "sure"),
        ("SBX_LOCAL_ISOLATION", "chroot"),
        ("SBX_FALLBACK", "docker"),
    ],
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
    assert Settings().topology.database_url is None


def test_flat_keywords_reach_their_group_and_the_rest_comes_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SBX_LOCAL_UID", "4242")
    settings = Settings(SB_MODE="live", SBX_LOCAL_ISOLATION="process", PORT=4000)
    assert settings.sandboxes.sb_mode is SandboxMode.LIVE
    assert settings.sandboxes.local.isolation is IsolationChoice.PROCESS
    assert settings.sandboxes.local.uid == 4242
    assert settings.topology.port == 4000


def test_fallback_is_a_comma_separated_list_of_providers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SBX_FALLBACK", "local, mock")
    assert load_settings().sandboxes.sbx_fallback == [
        SandboxProviderName.LOCAL,
        SandboxProviderName.MOCK,
    ]
    monkeypatch.delenv("SBX_FALLBACK")
    assert load_settings().sandboxes.sbx_fallback == []


def test_with_overrides_replaces_flat_names_inside_their_groups() -> None:
    settings = Settings(SBX_LOCAL_UID=7)
    moved = settings.with_overrides(database_url="postgresql://db/x", SBX_LOCAL_UID=8)
    assert moved.topology.database_url == "postgresql://db/x"
    assert moved.sandboxes.local.uid == 8 and settings.sandboxes.local.uid == 7
