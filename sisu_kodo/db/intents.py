"""Intents: the goals people post."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB


@dataclass(frozen=True)
class IntentRow:
    id: str
    goal: str
    inputs: dict[str, Any]
    constraints: dict[str, Any]
    created_at: datetime


_INSERT = sa.text(
    "INSERT INTO app.intents (id, goal, inputs, constraints)"
    " VALUES (:id, :goal, :inputs, :constraints)"
).bindparams(sa.bindparam("inputs", type_=JSONB), sa.bindparam("constraints", type_=JSONB))


def create_intent(
    conn: sa.Connection,
    *,
    intent_id: str,
    goal: str,
    inputs: dict[str, Any],
    constraints: dict[str, Any],
) -> None:
    conn.execute(
        _INSERT, {"id": intent_id, "goal": goal, "inputs": inputs, "constraints": constraints}
    )


def read_intent(conn: sa.Connection, *, intent_id: str) -> IntentRow | None:
    row = conn.execute(
        sa.text("SELECT id, goal, inputs, constraints, created_at FROM app.intents WHERE id = :id"),
        {"id": intent_id},
    ).one_or_none()
    return IntentRow(*row) if row else None
