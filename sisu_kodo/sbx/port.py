"""The sandbox port: start one task's command in isolation, collect a normalised result."""

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
    """Every provider starts and collects attempts and never raises for a task's own
    failure: failures come back as a result whose `errCode` says what went wrong.

    An attempt is named by its identity alone (runId, taskKey, attempt), so a worker
    that recovers another's step finds the attempt instead of starting it twice.
    """

    name: str

    def health(self) -> ProviderHealth: ...

    def start(self, request: SandboxRequest) -> str:
        """Start the attempt unless a trace of it exists; return its sandbox ref.

        Idempotent: an attempt already started (by this process or a dead one) is not
        started again, its ref is returned.
        """
        ...

    def wait(self, request: SandboxRequest, ref: str) -> SandboxResult:
        """Block until the attempt ends (past its deadline it is killed: TIMEOUT), collect
        its output and files, clean up, and return the result. LOST when nothing can be
        collected; CANCELED when `cancel_run` killed it."""
        ...

    def run(self, request: SandboxRequest) -> SandboxResult:
        """`start` then `wait`."""
        ...

    def cancel_run(self, run_id: str) -> list[str]:
        """Kill every in-flight sandbox of the run (their `wait` returns CANCELED);
        return the refs killed."""
        ...
