"""Choose the sandbox provider from settings.

SB_MODE=mock always gives the mock. SB_MODE=live takes SBX_PROVIDER, or when it is
unset e2b if E2B_API_KEY is set, else local (a newcomer sees real commands run). A
provider that cannot work here fails closed with one line naming the variable, unless
SBX_FALLBACK lists providers to try next, in order.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from sisu_kodo.blobs import create_blob_store
from sisu_kodo.config import (
    ConfigError,
    SandboxMode,
    SandboxProviderName,
    SandboxSettings,
    Settings,
)
from sisu_kodo.sbx.files import ArtifactResolver, SnapshotReader
from sisu_kodo.sbx.mock import MockSandboxProvider
from sisu_kodo.sbx.port import SandboxProvider

log = logging.getLogger("sisu_kodo.sbx")


@dataclass(frozen=True)
class Sources:
    """Where a provider reads what it places in a sandbox: files in, workspace snapshots."""

    resolver: ArtifactResolver | None = None
    snapshots: SnapshotReader | None = None


Builder = Callable[[SandboxSettings, Sources], SandboxProvider]


def create_provider(
    settings: Settings,
    *,
    resolver: ArtifactResolver | None = None,
    snapshots: SnapshotReader | None = None,
) -> SandboxProvider:
    """The provider the settings ask for; raises ConfigError when none can run. Workspace
    snapshots are read from `snapshots`, by default the settings' blob store."""
    if snapshots is None:
        snapshots = create_blob_store(settings).get
    sources = Sources(resolver, snapshots)
    sandboxes = settings.sandboxes
    if sandboxes.sb_mode is SandboxMode.MOCK:
        return _mock(sandboxes, sources)
    wanted = sandboxes.sbx_provider or _auto_choice(sandboxes)
    try:
        return _build(wanted, sandboxes, sources)
    except ConfigError as first:
        for name in (n for n in sandboxes.sbx_fallback if n is not wanted):
            try:
                provider = _build(name, sandboxes, sources)
            except ConfigError as exc:
                log.warning("sandbox fallback %s unavailable: %s", name.value, exc)
                continue
            log.warning("sandbox provider %s unavailable (%s); using %s", wanted, first, name)
            return provider
        raise


def _auto_choice(sandboxes: SandboxSettings) -> SandboxProviderName:
    return SandboxProviderName.E2B if sandboxes.e2b.api_key else SandboxProviderName.LOCAL


def _strict(sandboxes: SandboxSettings) -> bool:
    if sandboxes.sbx_strict_mode is not None:
        return sandboxes.sbx_strict_mode
    return sandboxes.sb_mode is SandboxMode.LIVE


def _build(
    name: SandboxProviderName, sandboxes: SandboxSettings, sources: Sources
) -> SandboxProvider:
    try:
        return _BUILDERS[name](sandboxes, sources)
    except ImportError as exc:
        raise ConfigError(
            f"invalid SBX_PROVIDER={name.value!r}: its SDK is not installed"
            f" (pip install 'sisu-kodo[{name.value}]'): {exc}"
        ) from exc


def _local(sandboxes: SandboxSettings, sources: Sources) -> SandboxProvider:
    from sisu_kodo.sbx.local import LocalLimits, LocalSandboxProvider

    local = sandboxes.local
    return LocalSandboxProvider(
        work_root=local.work_root,
        isolation=local.isolation,
        bwrap=local.bwrap,
        sandbox_uid=local.uid,
        limits=LocalLimits(
            memory_mb=local.memory_mb,
            open_files=local.max_open_files,
            processes=local.max_processes,
            output_cap_bytes=sandboxes.artifact_max_bytes,
        ),
        resolver=sources.resolver,
        snapshots=sources.snapshots,
    )


def _e2b(sandboxes: SandboxSettings, sources: Sources) -> SandboxProvider:
    e2b = sandboxes.e2b
    if e2b.api_key is None and _strict(sandboxes):
        raise ConfigError(
            "invalid SBX_PROVIDER='e2b': E2B_API_KEY is not set"
            " (SBX_STRICT_MODE is on; set the key or choose another SBX_PROVIDER)"
        )
    from sisu_kodo.sbx.e2b import E2BConnection, E2BSandboxProvider

    connection = E2BConnection(
        api_key=e2b.api_key.get_secret_value() if e2b.api_key else None,
        domain=e2b.domain,
        api_url=e2b.api_url,
        sandbox_url=e2b.sandbox_url,
        request_timeout_s=e2b.request_timeout_seconds,
        http_version=e2b.http_version,
        retries=e2b.retries,
    )
    return E2BSandboxProvider(
        connection,
        template=e2b.template,
        output_cap_bytes=sandboxes.artifact_max_bytes,
        resolver=sources.resolver,
        snapshots=sources.snapshots,
    )


def _microsandbox(sandboxes: SandboxSettings, sources: Sources) -> SandboxProvider:
    from sisu_kodo.sbx.microsandbox import MicrosandboxProvider, virtualization_problem

    problem = virtualization_problem()
    if problem is not None:
        raise ConfigError(f"invalid SBX_PROVIDER='microsandbox': {problem}")
    import microsandbox  # noqa: F401  (fail at start, not at the first task)

    return MicrosandboxProvider(
        image=sandboxes.microsandbox.image,
        boot_timeout_s=sandboxes.microsandbox.boot_timeout_seconds,
        output_cap_bytes=sandboxes.artifact_max_bytes,
        resolver=sources.resolver,
    )


def _mock(sandboxes: SandboxSettings, sources: Sources) -> SandboxProvider:
    return MockSandboxProvider(
        latency_ms=sandboxes.mock_latency_ms,
        journal_dir=sandboxes.mock_journal_dir,
        output_cap_bytes=sandboxes.artifact_max_bytes,
    )


_BUILDERS: dict[SandboxProviderName, Builder] = {
    SandboxProviderName.LOCAL: _local,
    SandboxProviderName.E2B: _e2b,
    SandboxProviderName.MICROSANDBOX: _microsandbox,
    SandboxProviderName.MOCK: _mock,
}
