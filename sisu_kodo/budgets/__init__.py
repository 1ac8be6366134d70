"""Budgets a run is held to while it executes: sandbox minutes, attempts, wall clock."""

from sisu_kodo.budgets.limits import (
    SANDBOX_MINUTES,
    Budget,
    BudgetReport,
    exhausted_message,
    measure,
)

__all__ = ["SANDBOX_MINUTES", "Budget", "BudgetReport", "exhausted_message", "measure"]
