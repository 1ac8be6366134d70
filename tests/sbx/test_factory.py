"""create_provider: mock mode, explicit choice, the automatic choice, fail-closed, fallback."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from sisu_kodo.config import ConfigError, SandboxProviderName, Settings, load_settings
from sisu_kodo.sbx import create_provider
from sisu_kodo.sbx.e2b import E2BSandboxProvider
from sisu_kodo.sbx.local import LocalSandboxProvider
from sisu_kodo.sbx.microsandbox import virtualization_problem
from sisu_kodo.sbx.mock import MockSandboxProvider

SANDBOX_VARS = (
    "SB_MODE",
    "SBX_MODE",
    "SBX_PROVIDER",
    "SBX_FALLBACK",
    "SBX_STRICT_MODE",
    "E2B_API_KEY",
    "SBX_LOCAL_ISOLATION",
    "SBX_LOCAL_BWRAP",
    "SBX_LOCAL_WORK_ROOT",
)


@pytest.fixture(autouse=True)
def clean_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in SANDBOX_VARS:
        monkeypatch.delenv(name, raising=False)


def live(work_root: Path, **values: Any) -> Settings:
    return Settings(SB_MODE="live", SBX_LOCAL_WORK_ROOT=work_root, **values)


def test_mock_mode_keeps_the_mock() -> None:
    provider = create_provider(Settings(SB_MODE="mock", SBX_PROVIDER="e2b"))
    assert isinstance(provider, MockSandboxProvider)


def test_live_without_provider_or_key_is_local(work_root: Path) -> None:
    provider = create_provider(live(work_root))
    assert isinstance(provider, LocalSandboxProvider)
    assert provider.health().isolation == "namespaces"


def test_live_without_provider_but_with_key_is_e2b(work_root: Path) -> None:
    provider = create_provider(live(work_root, E2B_API_KEY="e2b_x"))
    assert isinstance(provider, E2BSandboxProvider)


def test_explicit_mock_in_live_mode(work_root: Path) -> None:
    assert isinstance(create_provider(live(work_root, SBX_PROVIDER="mock")), MockSandboxProvider)


def test_e2b_without_key_fails_closed_in_one_line(work_root: Path) -> None:
    with pytest.raises(ConfigError) as raised:
        create_provider(live(work_root, SBX_PROVIDER="e2b"))
    message = str(raised.value)
    assert "\n" not in message and "E2B_API_KEY" in message and "SBX_PROVIDER" in message


def test_e2b_without_key_is_allowed_when_not_strict(work_root: Path) -> None:
    settings = live(work_root, SBX_PROVIDER="e2b", SBX_STRICT_MODE="0")
    assert isinstance(create_provider(settings), E2BSandboxProvider)


def test_unknown_provider_fails_naming_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SBX_PROVIDER", "docker")
    with pytest.raises(ConfigError, match=r"^invalid SBX_PROVIDER='docker'"):
        load_settings()


@pytest.mark.skipif(virtualization_problem() is None, reason="host has hardware virtualization")
def test_unavailable_microsandbox_fails_closed(work_root: Path) -> None:
    with pytest.raises(ConfigError, match=r"^invalid SBX_PROVIDER='microsandbox': .*vmx"):
        create_provider(live(work_root, SBX_PROVIDER="microsandbox"))


def test_fallback_order_is_used_and_logged(
    work_root: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = live(work_root, SBX_PROVIDER="e2b", SBX_FALLBACK="microsandbox, local,mock")
    with caplog.at_level(logging.WARNING, logger="sisu_kodo.sbx"):
        provider = create_provider(settings)
    assert isinstance(provider, LocalSandboxProvider)
    assert any("using local" in r.getMessage() for r in caplog.records)


def test_forced_namespaces_without_bwrap_fails_closed(work_root: Path) -> None:
    settings = live(
        work_root,
        SBX_PROVIDER="local",
        SBX_LOCAL_ISOLATION="namespaces",
        SBX_LOCAL_BWRAP="/bin/false",
    )
    with pytest.raises(ConfigError, match=r"^invalid SBX_LOCAL_ISOLATION='namespaces'"):
        create_provider(settings)
    fallback = settings.with_overrides(SBX_FALLBACK=[SandboxProviderName.MOCK])
    assert isinstance(create_provider(fallback), MockSandboxProvider)


def test_bad_fallback_name_fails_closed(work_root: Path) -> None:
    with pytest.raises(ConfigError, match=r"^invalid SBX_FALLBACK='docker'"):
        load_settings(SB_MODE="live", SBX_PROVIDER="e2b", SBX_FALLBACK="local,docker")
