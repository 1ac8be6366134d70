"""Each budget's use and limit for one run, measured from the ledger.

- sandboxMinutes: sandbox wall time summed over every attempt (retries included), against
  the workload's `sandboxMinutes` (raised by a retry), else the recipe's cap;
- attempts: sandbox attempts of the run, against the recipe's `maxAttemptsPerRun`;
- wallClockSeconds: time since ExecuteST first started, against `maxWallSeconds`.

A run that reaches one starts no new task and ends retries_exceeded (REPAIR).
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from sisu_kodo.contracts.runs import Workload
from sisu_kodo.db import budgets, recipes, runs

SANDBOX_MINUTES = "sandboxMinutes"
ATTEMPTS = "attempts"
WALL_CLOCK = "wallClockSeconds"


@dataclass(frozen=True)
class Budget:
    name: str
    used: float
    allowed: float | None  # None: no limit
    unit: str

    @property
    def exhausted(self) -> bool:
        return self.allowed is not None and self.used >= self.allowed


@dataclass(frozen=True)
class BudgetReport:
    budgets: list[Budget]

    @property
    def exhausted(self) -> Budget | None:
        return next((budget for budget in self.budgets if budget.exhausted), None)

    def figures(self) -> dict[str, dict[str, object]]:
        return {
            b.name: {"used": round(b.used, 3), "allowed": b.allowed, "unit": b.unit}
            for b in self.budgets
        }


def measure(conn: sa.Connection, run: runs.RunRow, *, minute_seconds: float) -> BudgetReport:
    recipe = recipes.read_recipe(conn, name=run.recipe_name)
    assert recipe is not None  # app.runs.recipe_name references app.recipes
    used = budgets.spent(conn, run_id=run.id)
    workload = Workload.model_validate(run.start_request["workload"])
    minutes = (
        budgets.raised_sandbox_minutes(conn, run_id=run.id)
        or workload.sandboxMinutes
        or recipe.max_sandbox_minutes
    )
    return BudgetReport(
        [
            Budget(SANDBOX_MINUTES, used.sandbox_ms / 1000 / minute_seconds, minutes, "minutes"),
            Budget(ATTEMPTS, used.attempts, recipe.max_attempts_per_run, "attempts"),
            Budget(WALL_CLOCK, used.wall_seconds, recipe.max_wall_seconds, "seconds"),
        ]
    )


def exhausted_message(budget: Budget) -> str:
    return (
        f"budget {budget.name} exhausted: {budget.used:.2f} of {budget.allowed:g}"
        f" {budget.unit} used; no new task was started"
    )
