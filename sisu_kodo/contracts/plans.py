"""The structured plan CompileST produces and the concrete tasks DecideST derives from it."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

MAX_PLAN_TASKS = 10_000


class PlanTask(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    command: str = Field(min_length=1, max_length=10_000)
    purpose: str = Field("", max_length=2_000)


class Plan(BaseModel):
    """What the planner (OpenCode or the deterministic replay planner) returns."""

    model_config = ConfigDict(extra="forbid")

    goal: str
    design: list[str] = Field(default_factory=list, max_length=50)
    tasks: list[PlanTask] = Field(max_length=MAX_PLAN_TASKS)
    files: list[str] = Field(default_factory=list, max_length=200)
    risks: list[str] = Field(default_factory=list, max_length=50)
    tests: list[str] = Field(default_factory=list, max_length=200)


class TaskSpec(BaseModel):
    """One concrete sandbox task; `taskKey` is the sha256 of its canonical identity."""

    model_config = ConfigDict(extra="forbid")

    taskKey: str
    index: int
    name: str
    command: str
    env: dict[str, str] = Field(default_factory=dict)
    timeoutMs: int
    labels: dict[str, str] = Field(default_factory=dict)
