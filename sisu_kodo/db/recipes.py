"""Recipes: named run templates with the caps the queue policy enforces."""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa


@dataclass(frozen=True)
class RecipeRow:
    name: str
    version: int
    queue_name: str
    max_concurrency: int
    max_steps: int
    max_sandbox_minutes: int


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
            "SELECT name, version, queue_name, max_concurrency, max_steps, max_sandbox_minutes"
            " FROM app.recipes WHERE name = :name"
        ),
        {"name": name},
    ).one_or_none()
    return RecipeRow(*row) if row else None
