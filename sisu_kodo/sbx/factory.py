"""Choose the sandbox provider from settings.

SB_MODE=mock always gives the mock. SB_MODE=live takes SBX_PROVIDER, or when it is
unset e2b if E2B_API_KEY is set, else local (a newcomer sees real commands run). A
provider that cannot work here fails closed with one line naming the variable, unless
SBX_FALLBACK lists providers to try next, in order.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from sisu_kodo.config import ConfigError, SandboxMode, SandboxProviderName, Settings
from sisu_kodo.sbx.files import ArtifactResolver
from sisu_kodo.sbx.mock import MockSandboxProvider
from sisu_kodo.sbx.port import SandboxProvider

log = logging.getLogger("sisu_kodo.sbx")

Builder = Callable[[Settings, ArtifactResolver | None], SandboxProvider]


def create_provider(
    settings: Settings, *, resolver: ArtifactResolver | None = None
) -> SandboxProvider:
    """The provider the settings ask for; raises ConfigError when none can run."""
    if settings.sb_mode is SandboxMode.MOCK:
        return MockSandboxProvider(
            latency_ms=settings.mock_latency_ms, output_cap_bytes=settings.artifact_max_bytes
        )
    wanted = settings.sbx_provider or _auto_choice(settings)
    try:
        return _build(wanted, settings, resolver)
    except ConfigError as first:
        for name in _fallbacks(settings, wanted):
            try:
                provider = _build(name, settings, resolver)
            except ConfigError as exc:
                log.warning("sandbox fallback %s unavailable: %s", name.value, exc)
                continue
            log.warning("sandbox provider %s unavailable (%s); using %s", wanted, first, name)
            return provider
        raise


def _auto_choice(settings: Settings) -> SandboxProviderName:
    return SandboxProviderName.E2B if settings.e2b_api_key else SandboxProviderName.LOCAL


def _strict(settings: Settings) -> bool:
    if settings.sbx_strict_mode is not None:
        return settings.sbx_strict_mode
    return settings.sb_mode is SandboxMode.LIVE


def _fallbacks(settings: Settings, wanted: SandboxProviderName) -> list[SandboxProviderName]:
    names = [n.strip() for n in (settings.sbx_fallback or "").split(",") if n.strip()]
    try:
        order = [SandboxProviderName(n) for n in names]
    except ValueError as exc:
        choices = ", ".join(p.value for p in SandboxProviderName)
        raise ConfigError(
            f"invalid SBX_FALLBACK={settings.sbx_fallback!r}: use names from {choices}"
        ) from exc
    return [n for n in order if n is not wanted]


def _build(
    name: SandboxProviderName, settings: Settings, resolver: ArtifactResolver | None
) -> SandboxProvider:
    try:
        return _BUILDERS[name](settings, resolver)
    except ImportError as exc:
        raise ConfigError(
            f"invalid SBX_PROVIDER={name.value!r}: its SDK is not installed"
            f" (pip install 'sisu-kodo[{name.value}]'): {exc}"
        ) from exc


def _local(settings: Settings, resolver: ArtifactResolver | None) -> SandboxProvider:
    from sisu_kodo.sbx.local import IsolationChoice, LocalLimits, LocalSandboxProvider

    return LocalSandboxProvider(
        work_root=settings.sbx_local_work_root,
        isolation=IsolationChoice(settings.sbx_local_isolation),
        bwrap=settings.sbx_local_bwrap,
        sandbox_uid=settings.sbx_local_uid,
        limits=LocalLimits(
            memory_mb=settings.sbx_local_memory_mb,
            open_files=settings.sbx_local_max_open_files,
            processes=settings.sbx_local_max_processes,
            output_cap_bytes=settings.artifact_max_bytes,
        ),
        resolver=resolver,
    )


def _e2b(settings: Settings, resolver: ArtifactResolver | None) -> SandboxProvider:
    if settings.e2b_api_key is None and _strict(settings):
        raise ConfigError(
            "invalid SBX_PROVIDER='e2b': E2B_API_KEY is not set"
            " (SBX_STRICT_MODE is on; set the key or choose another SBX_PROVIDER)"
        )
    from sisu_kodo.sbx.e2b import E2BConnection, E2BSandboxProvider

    key = settings.e2b_api_key
    connection = E2BConnection(
        api_key=key.get_secret_value() if key else None,
        domain=settings.e2b_domain,
        api_url=settings.e2b_api_url,
        sandbox_url=settings.e2b_sandbox_url,
        request_timeout_s=settings.e2b_request_timeout_seconds,
        http_version=settings.e2b_http_version,
        retries=settings.e2b_retries,
    )
    return E2BSandboxProvider(
        connection,
        template=settings.e2b_template,
        output_cap_bytes=settings.artifact_max_bytes,
        resolver=resolver,
    )


def _microsandbox(settings: Settings, resolver: ArtifactResolver | None) -> SandboxProvider:
    from sisu_kodo.sbx.microsandbox import MicrosandboxProvider, virtualization_problem

    problem = virtualization_problem()
    if problem is not None:
        raise ConfigError(f"invalid SBX_PROVIDER='microsandbox': {problem}")
    import microsandbox  # noqa: F401  (fail at start, not at the first task)

    return MicrosandboxProvider(
        image=settings.microsandbox_image,
        boot_timeout_s=settings.microsandbox_boot_timeout_seconds,
        output_cap_bytes=settings.artifact_max_bytes,
        resolver=resolver,
    )


def _mock(settings: Settings, resolver: ArtifactResolver | None) -> SandboxProvider:
    return MockSandboxProvider(
        latency_ms=settings.mock_latency_ms, output_cap_bytes=settings.artifact_max_bytes
    )


_BUILDERS: dict[SandboxProviderName, Builder] = {
    SandboxProviderName.LOCAL: _local,
    SandboxProviderName.E2B: _e2b,
    SandboxProviderName.MICROSANDBOX: _microsandbox,
    SandboxProviderName.MOCK: _mock,
}
