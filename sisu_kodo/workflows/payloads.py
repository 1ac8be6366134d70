"""Typed inputs and outputs of the workflows and their steps.

DBOS pickles every workflow input and output and every step output into PostgreSQL and
unpickles them on replay, possibly days later, in another worker: these classes must stay
top-level, importable from this module path, and keep their field names.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from sisu_kodo.contracts.plans import Plan, TaskSpec
from sisu_kodo.contracts.sandbox import ErrCode
from sisu_kodo.oc.port import CompileRequest


class RecordedPlan(BaseModel):
    """A plan as CompileST recorded it, with the sha256 of its plan card."""

    plan: Plan
    sha256: str


class PlanStart(BaseModel):
    """Where planning resumes: the planner request, or the plan a retry already has."""

    request: CompileRequest
    recorded: RecordedPlan | None = None


class TaskRun(BaseModel):
    """The input of one sandbox_task_workflow: a decided task in one retry round."""

    spec: TaskSpec
    # Attempts earlier rounds of a retried run used: this round's first attempt is
    # attempt_offset + 1, and its retry budget counts from there.
    attempt_offset: int = Field(0, ge=0)
    # The approved workspace snapshot the task starts in, if the run has one.
    workspace_sha256: str | None = None


class CapturedWorkspace(BaseModel):
    """What the capture at run start recorded: the snapshot and the planner's summary."""

    sha256: str
    summary: dict[str, Any]


class ExecutionStart(BaseModel):
    """What begin_execute hands the fan-out: the tasks still to run and its limits."""

    tasks: list[TaskRun]
    concurrency: int = Field(ge=1)
    partition_key: str
    retry_count: int = Field(ge=0)


class TaskOutcome(BaseModel):
    """What one task workflow returns: its final attempt in this round."""

    task_key: str
    attempt: int
    err_code: ErrCode


class BudgetStop(BaseModel):
    """A budget the run reached while fanning out: no new task starts."""

    budget: str
    message: str
    cancel_in_flight: bool = False
