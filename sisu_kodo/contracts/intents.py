"""Intent bodies: what a person asks for."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from sisu_kodo.contracts.text import JsonObject, Text


class IntentCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    goal: Text = Field(min_length=1, max_length=10_000, pattern=r"\S")
    inputs: JsonObject = Field(default_factory=dict)
    constraints: JsonObject = Field(default_factory=dict)


class IntentCreated(BaseModel):
    intentId: str


class IntentView(IntentCreated):
    goal: str
    inputs: dict[str, Any]
    constraints: dict[str, Any]
    createdAt: str
