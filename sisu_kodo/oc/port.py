"""The planner port: turn an intent into a structured plan."""

from __future__ import annotations

from typing import Any, Protocol

from pydantic import BaseModel

from sisu_kodo.contracts.plans import Plan


class CompileRequest(BaseModel):
    runId: str
    attempt: int = 1
    goal: str
    inputs: dict[str, Any]
    constraints: dict[str, Any]
    taskCount: int


class PlanResult(BaseModel):
    """A plan and where it came from: `live`, `fixture`, `builtin`, or `fallback` (a live
    call failed and, outside strict mode, the built-in planner answered instead)."""

    plan: Plan
    source: str
    callId: str | None = None
    detail: str | None = None


class Planner(Protocol):
    """Compiles an intent into a Plan (OpenCode live/record, or deterministic replay)."""

    mode: str

    def compile(self, request: CompileRequest) -> PlanResult: ...
