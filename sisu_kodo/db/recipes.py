"""Recipes: named run templates with the caps the queue policy enforces."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB


@dataclass(frozen=True)
class RecipeRow:
    name: str
    version: int
    queue_name: str
    max_concurrency: int
    max_steps: int
    max_sandbox_minutes: int
    # From `spec`: the approval gate's separation of duties.
    allow_self_approval: bool = False
    required_approvals: int = 1
    # From `spec`: how long the gate stays open (None: the intent's, else Settings').
    approval_ttl_seconds: int | None = None
    # From `spec`: budgets held while the run executes (None: no cap).
    max_attempts_per_run: int | None = None
    max_wall_seconds: int | None = None


SEED = (
    RecipeRow("sandbox-default", 1, "intentQ", 64, 10_000, 60),
    RecipeRow("compile-default", 1, "intentQ", 10, 32, 15),
)


def seed(conn: sa.Connection) -> None:
    for row in SEED:
        conn.execute(
            sa.text(
                """
                INSERT INTO app.recipes
                    (name, version, queue_name, max_concurrency, max_steps, max_sandbox_minutes)
                VALUES (:name, :version, :queue_name, :max_concurrency, :max_steps,
                        :max_sandbox_minutes)
                ON CONFLICT (name) DO UPDATE SET
                    version = EXCLUDED.version,
                    queue_name = EXCLUDED.queue_name,
                    max_concurrency = EXCLUDED.max_concurrency,
                    max_steps = EXCLUDED.max_steps,
                    max_sandbox_minutes = EXCLUDED.max_sandbox_minutes
                """
            ),
            row.__dict__,
        )


def read_recipe(conn: sa.Connection, *, name: str) -> RecipeRow | None:
    row = conn.execute(
        sa.text(
            "SELECT name, version, queue_name, max_concurrency, max_steps, max_sandbox_minutes,"
            " spec FROM app.recipes WHERE name = :name"
        ),
        {"name": name},
    ).one_or_none()
    if row is None:
        return None
    spec = row.spec or {}
    name_, version, queue_name, max_concurrency, max_steps, max_sandbox_minutes = row[:6]
    return RecipeRow(
        name_,
        version,
        queue_name,
        max_concurrency,
        max_steps,
        max_sandbox_minutes,
        allow_self_approval=spec.get("allowSelfApproval") is True,
        required_approvals=_positive(spec.get("requiredApprovals"), default=1),
        approval_ttl_seconds=_optional_positive(spec.get("approvalTtlSeconds")),
        max_attempts_per_run=_optional_positive(spec.get("maxAttemptsPerRun")),
        max_wall_seconds=_optional_positive(spec.get("maxWallSeconds")),
    )


def _optional_positive(value: object) -> int | None:
    return _positive(value, default=0) or None


def _positive(value: object, *, default: int) -> int:
    """A spec's count, or `default` when absent or not a positive integer."""
    return (
        value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else default
    )


def set_spec(conn: sa.Connection, *, name: str, spec: dict[str, Any]) -> None:
    """Replace a recipe's spec (e.g. {"requiredApprovals": 2, "allowSelfApproval": false})."""
    conn.execute(
        sa.text("UPDATE app.recipes SET spec = :spec WHERE name = :name").bindparams(
            sa.bindparam("spec", type_=JSONB)
        ),
        {"name": name, "spec": spec},
    )
