"""Sandbox port: providers that run task commands in isolation."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sisu_kodo.sbx.factory import create_provider
    from sisu_kodo.sbx.port import ProviderHealth, SandboxProvider

__all__ = ["ProviderHealth", "SandboxProvider", "create_provider"]


def __getattr__(name: str) -> Any:
    # Lazy: the per-attempt supervisor (`python -m sisu_kodo.sbx.supervisor`) imports this
    # package and must start in milliseconds, without pydantic or the settings.
    if name == "create_provider":
        from sisu_kodo.sbx.factory import create_provider

        return create_provider
    if name in ("ProviderHealth", "SandboxProvider"):
        from sisu_kodo.sbx import port

        return getattr(port, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
