"""Budgets enforced while a run executes, in one process (a real DBOS worker on a fresh
database), at a scaled minute (SISU_BUDGET_MINUTE_SECONDS=1): a 6-"minute" sandbox budget
with 2-second tasks stops the run after three tasks' worth; a retry needs a raised budget
and is charged for the first round's attempts too; a recipe's attempt cap stops a run the
same way and cannot be raised by a retry."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from sisu_kodo.api import service
from sisu_kodo.contracts.runs import (
    ExecuteOutput,
    NextAction,
    RetryRun,
    RunStatus,
)
from sisu_kodo.db import artifacts
from sisu_kodo.errors import BudgetExhaustedError, QueuePolicyViolationError
from tests.fixtures.in_process import InProcessWorker
from tests.fixtures.postgres import TestDatabases
from tests.fixtures.runs import scalar

TENANT = "tenant-budget"
TASK_MS = 2000


@pytest.fixture(scope="module")
def worker(databases: TestDatabases) -> Iterator[InProcessWorker]:
    started = InProcessWorker.start(
        databases.create(),
        mock_latency_ms=5,
        queue_poll_seconds=0.05,
        task_retry_interval_seconds=0.01,
        budget_minute_seconds=1.0,
    )
    with started.engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO app.recipes (name, queue_name, max_concurrency, max_steps,"
                " max_sandbox_minutes, spec) VALUES ('capped', 'intentQ', 4, 10, 60,"
                " '{\"maxAttemptsPerRun\": 2}'::jsonb)"
            )
        )
    yield started
    started.stop()


def start(
    worker: InProcessWorker,
    *,
    steps: int,
    constraints: dict[str, object],
    sandbox_minutes: int | None = None,
    recipe: str = "sandbox-default",
) -> str:
    run_id = worker.start_run(
        "budgeted",
        steps=steps,
        concurrency=1,
        partition=TENANT,
        constraints=constraints,
        sandbox_minutes=sandbox_minutes,
        recipe=recipe,
    )
    worker.wait_status(run_id, RunStatus.WAITING_INPUT)
    worker.approve(run_id)
    return run_id


def retry(worker: InProcessWorker, run_id: str, minutes: int | None = None) -> None:
    with worker.gateway.unit_of_work(worker.engine) as unit:
        service.retry_run(unit, run_id=run_id, body=RetryRun(sandboxMinutes=minutes))


def started_tasks(worker: InProcessWorker, run_id: str) -> int:
    return int(
        scalar(
            worker.engine,
            "SELECT COUNT(DISTINCT task_key) FROM app.sbx_runs WHERE run_id = :r",
            r=run_id,
        )
    )


def test_a_sandbox_budget_stops_the_run_and_retries_are_charged(
    worker: InProcessWorker,
) -> None:
    run_id = start(worker, steps=6, constraints={"mockLatencyMs": TASK_MS}, sandbox_minutes=6)
    worker.wait_status(run_id, RunStatus.RETRIES_EXCEEDED, timeout=120)
    view = worker.view(run_id)
    assert view.nextAction is NextAction.REPAIR
    assert view.error is not None and "budget sandboxMinutes exhausted" in view.error
    assert started_tasks(worker, run_id) == 3  # 3 x 2 s reach 6 budget "minutes" of 1 s
    output = view.execute_output()
    assert isinstance(output, ExecuteOutput)
    assert [task.status for task in output.raw.tasks] == ["succeeded"] * 3 + ["pending"] * 3
    sandbox = next(b for b in view.budgets if b.name == "sandboxMinutes")
    assert sandbox.allowed == 6 and sandbox.used >= 6
    with worker.engine.connect() as conn:
        stored = artifacts.read_artifact(
            conn, uri=f"artifact://run/{run_id}/step/ExecuteST/task/default/budget"
        )
    assert stored is not None
    figures = json.loads(stored.content)
    assert figures["budget"] == "sandboxMinutes" and figures["tasksNotStarted"] == 3
    assert figures["budgets"]["sandboxMinutes"]["allowed"] == 6

    with pytest.raises(BudgetExhaustedError):
        retry(worker, run_id)
    with pytest.raises(BudgetExhaustedError):
        retry(worker, run_id, 6)
    with pytest.raises(QueuePolicyViolationError):
        retry(worker, run_id, 61)  # over the recipe's cap of 60
    assert worker.status(run_id) is RunStatus.RETRIES_EXCEEDED

    # Raised to 10: the first round's 6 count, so about two more tasks fit.
    retry(worker, run_id, 10)
    worker.wait_status(run_id, RunStatus.RETRIES_EXCEEDED, timeout=120)
    assert worker.view(run_id).retryCount == 1
    assert started_tasks(worker, run_id) == 5
    assert scalar(worker.engine, "SELECT COUNT(*) FROM app.mock_receipts WHERE seen_count > 1") == 0

    retry(worker, run_id, 20)
    worker.wait_status(run_id, RunStatus.SUCCEEDED, timeout=120)
    assert started_tasks(worker, run_id) == 6


def test_a_recipe_attempt_cap_stops_the_run_and_cannot_be_retried_away(
    worker: InProcessWorker,
) -> None:
    run_id = start(worker, steps=4, constraints={}, recipe="capped")
    worker.wait_status(run_id, RunStatus.RETRIES_EXCEEDED, timeout=60)
    view = worker.view(run_id)
    assert view.error is not None and "budget attempts exhausted" in view.error
    assert started_tasks(worker, run_id) == 2
    attempts = next(b for b in view.budgets if b.name == "attempts")
    assert (attempts.used, attempts.allowed) == (2, 2)
    with pytest.raises(BudgetExhaustedError, match="recipe cap"):
        retry(worker, run_id, 30)
