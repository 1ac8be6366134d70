"""The planner port: turn an intent into a structured plan."""

from __future__ import annotations

from typing import Any, Protocol

from pydantic import BaseModel

from sisu_kodo.contracts.plans import Plan


class CompileRequest(BaseModel):
    runId: str
    goal: str
    inputs: dict[str, Any]
    constraints: dict[str, Any]
    taskCount: int


class Planner(Protocol):
    """Compiles an intent into a Plan (OpenCode live/record, or deterministic replay)."""

    mode: str

    def compile(self, request: CompileRequest) -> Plan: ...
