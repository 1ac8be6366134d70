"""The sandbox port: run one task's command in isolation and report a normalised result."""

from __future__ import annotations

from typing import Protocol

from pydantic import BaseModel

from sisu_kodo.contracts.sandbox import SandboxRequest, SandboxResult


class ProviderHealth(BaseModel):
    provider: str
    ok: bool
    detail: str = ""
    isolation: str | None = None


class SandboxProvider(Protocol):
    """Every provider runs a request and never raises for a task's own failure:
    failures come back as a result whose `errCode` says what went wrong."""

    name: str

    def health(self) -> ProviderHealth: ...

    def run(self, request: SandboxRequest) -> SandboxResult: ...
