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
    tenant: str | None = None  # the tenant of the key that posted it, or of its run
    created_by_key_id: str | None = None


_INSERT = sa.text(
    "INSERT INTO app.intents (id, goal, inputs, constraints, tenant, created_by_key_id)"
    " VALUES (:id, :goal, :inputs, :constraints, :tenant, :key_id)"
).bindparams(sa.bindparam("inputs", type_=JSONB), sa.bindparam("constraints", type_=JSONB))


def create_intent(
    conn: sa.Connection,
    *,
    intent_id: str,
    goal: str,
    inputs: dict[str, Any],
    constraints: dict[str, Any],
    tenant: str | None = None,
    created_by_key_id: str | None = None,
) -> None:
    conn.execute(
        _INSERT,
        {
            "id": intent_id,
            "goal": goal,
            "inputs": inputs,
            "constraints": constraints,
            "tenant": tenant,
            "key_id": created_by_key_id,
        },
    )


def read_intent(conn: sa.Connection, *, intent_id: str) -> IntentRow | None:
    row = conn.execute(
        sa.text(
            "SELECT id, goal, inputs, constraints, created_at, tenant, created_by_key_id"
            " FROM app.intents WHERE id = :id"
        ),
        {"id": intent_id},
    ).one_or_none()
    return IntentRow(*row) if row else None


def claim_tenant(conn: sa.Connection, *, intent_id: str, tenant: str) -> None:
    """An intent posted without a tenant belongs to the tenant its run starts in."""
    conn.execute(
        sa.text("UPDATE app.intents SET tenant = :tenant WHERE id = :id AND tenant IS NULL"),
        {"id": intent_id, "tenant": tenant},
    )
