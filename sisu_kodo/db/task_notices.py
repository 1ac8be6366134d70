"""A task's attempt was recorded: a PostgreSQL notification the waiting fan-out wakes on.

The notice rides in the ledger transaction that records the attempt, so it is delivered
at commit, and only if the attempt committed. It carries the run id only: a woken
fan-out reads what ended from durable state (the ledger, DBOS's workflow rows), so a
missed or duplicated notice costs latency, never correctness.
"""

from __future__ import annotations

CHANNEL = "sisu_task_done"
