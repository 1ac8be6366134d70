"""Intent bodies: what a person asks for."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class IntentCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    goal: str = Field(min_length=1, max_length=10_000, pattern=r"\S")
    inputs: dict[str, Any] = Field(default_factory=dict)
    constraints: dict[str, Any] = Field(default_factory=dict)


class IntentCreated(BaseModel):
    intentId: str


class IntentView(IntentCreated):
    goal: str
    inputs: dict[str, Any]
    constraints: dict[str, Any]
    createdAt: str
