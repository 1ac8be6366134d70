"""Intent bodies: what a person asks for."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from sisu_kodo.contracts.text import JsonObject, Text

# Every planner plans any goal up to this long (the built-in one cites its start only).
MAX_GOAL_CHARS = 10_000
# The mock sandbox's knobs in `constraints` (sbx/faults.py), each capped: a request must
# not size a sandbox's work without limit (a 400 MB mock output once grew a worker by as
# much). No artifact keeps more than SISU_ARTIFACT_MAX_BYTES (1 MiB by default) of the
# output, and the cap on latency is the default task timeout, past which the mock never
# waits anyway.
MOCK_OUTPUT_BYTES = "mockOutputBytes"
MOCK_LATENCY_MS = "mockLatencyMs"
MOCK_KNOB_CAPS = {MOCK_OUTPUT_BYTES: 1_048_576, MOCK_LATENCY_MS: 300_000}


class IntentCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    goal: Text = Field(min_length=1, max_length=MAX_GOAL_CHARS, pattern=r"\S")
    inputs: JsonObject = Field(default_factory=dict)
    constraints: JsonObject = Field(default_factory=dict)

    @field_validator("constraints")
    @classmethod
    def _mock_knobs_in_range(cls, constraints: dict[str, Any]) -> dict[str, Any]:
        for knob, cap in MOCK_KNOB_CAPS.items():
            value = constraints.get(knob)
            if value is not None and mock_knob(value, cap=cap) != value:
                raise ValueError(f"{knob} must be an integer from 0 to {cap}")
        return constraints


class IntentCreated(BaseModel):
    intentId: str


class IntentView(IntentCreated):
    goal: str
    inputs: dict[str, Any]
    constraints: dict[str, Any]
    createdAt: str


def mock_knob(value: Any, *, cap: int) -> int | None:
    """A mock knob's value held to [0, cap], or None when it is not a count at all (JSON
    booleans are not counts)."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return min(value, cap)
    return None
