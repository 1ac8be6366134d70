"""Sandbox port: providers that run task commands in isolation."""

from sisu_kodo.sbx.factory import create_provider
from sisu_kodo.sbx.port import ProviderHealth, SandboxProvider

__all__ = ["ProviderHealth", "SandboxProvider", "create_provider"]
