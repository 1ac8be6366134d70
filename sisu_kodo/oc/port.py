"""The planner port: turn an intent into a structured plan."""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Protocol

from pydantic import BaseModel, Field

from sisu_kodo.contracts.plans import Plan
from sisu_kodo.errors import AppError


class CompileRequest(BaseModel):
    runId: str
    attempt: int = 1
    goal: str
    inputs: dict[str, Any]
    constraints: dict[str, Any]
    taskCount: int
    # The captured workspace's summary (files with sizes, the README's start), if any.
    workspace: dict[str, Any] | None = None


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


class PlannerFailure(StrEnum):
    """Why a planner call failed; stable values, recorded in `app.opencode_calls.error_code`."""

    UNREACHABLE = "unreachable"
    TIMEOUT = "timeout"
    AUTH = "auth"
    MODEL_ERROR = "model_error"
    NO_STRUCTURED_OUTPUT = "no_structured_output"
    INVALID_PLAN = "invalid_plan"
    SERVER_ERROR = "server_error"


class PlannerError(AppError):
    """A planner call failed; `details["failure"]` is a PlannerFailure value."""

    code = "planner_error"
    http_status = 502

    @classmethod
    def of(cls, failure: PlannerFailure, message: str) -> PlannerError:
        return cls(f"OpenCode {failure.value}: {message}", {"failure": failure.value})

    @property
    def failure(self) -> PlannerFailure:
        details = self.details if isinstance(self.details, dict) else {}
        return PlannerFailure(details.get("failure", PlannerFailure.SERVER_ERROR.value))


class Answer(BaseModel):
    """Everything one planner call produced: what the ledger records and the step returns.

    `plan` is None only when the call failed and nothing may stand in for it (strict mode,
    or a broken fixture); the ledger then raises `PlannerError` from `errorCode`/`error`.
    """

    plan: Plan | None
    source: str
    detail: str | None = None
    agent: str
    schemaHash: str
    prompt: str
    promptVersion: str
    fixtureKey: str
    reply: Any = None
    tokens: dict[str, Any] = Field(default_factory=dict)
    errorCode: PlannerFailure | None = None
    error: str | None = None


class Answerer(Protocol):
    """A planner adapter: one call, fully described, for the ledger to record."""

    mode: str

    def answer(self, request: CompileRequest) -> Answer: ...
