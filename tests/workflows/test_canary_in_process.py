"""Canary and partial approval in one process (a real DBOS worker on a fresh database):
the approval binds exactly the approved task set; a canary runs first and parks the run
again; approving runs the rest, rejecting keeps the canary's results; a subset's other
tasks end skipped. The manual's oracles hold for each."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from sisu_kodo.api import service
from sisu_kodo.contracts.plans import TaskSpec
from sisu_kodo.contracts.runs import (
    ApprovePlan,
    ExecuteOutput,
    NextAction,
    RejectPlan,
    RunStatus,
)
from sisu_kodo.db import executions, oracles
from sisu_kodo.errors import AppError, IllegalStateError, InvalidRequestError
from sisu_kodo.workflows import runtime
from sisu_kodo.workflows.payloads import TaskRun
from sisu_kodo.workflows.steps.execution import _refuse_unapproved
from tests.fixtures.in_process import InProcessWorker
from tests.fixtures.postgres import TestDatabases
from tests.fixtures.runs import ledger_counts, scalar

TENANT = "tenant-canary"


@pytest.fixture(scope="module")
def worker(databases: TestDatabases) -> Iterator[InProcessWorker]:
    started = InProcessWorker.start(
        databases.create(),
        mock_latency_ms=5,
        queue_poll_seconds=0.05,
        task_retry_interval_seconds=0.01,
    )
    yield started
    started.stop()


def at_gate(worker: InProcessWorker, steps: int) -> tuple[str, list[TaskSpec]]:
    run_id = worker.start_run("canary", steps=steps, concurrency=3, partition=TENANT)
    worker.wait_status(run_id, RunStatus.WAITING_INPUT)
    with worker.engine.connect() as conn:
        return run_id, executions.decided_tasks(conn, run_id=run_id)


def approve(worker: InProcessWorker, run_id: str, **scope: object) -> None:
    with worker.gateway.unit_of_work(worker.engine) as unit:
        service.approve_plan(
            unit,
            run_id=run_id,
            body=ApprovePlan.model_validate({"approvedBy": "ops", **scope}),
            blobs=runtime.current().blobs,
        )


def execute_output(worker: InProcessWorker, run_id: str) -> ExecuteOutput:
    output = worker.view(run_id).execute_output()
    assert isinstance(output, ExecuteOutput)
    return output


def ran(worker: InProcessWorker, run_id: str) -> set[str]:
    with worker.engine.connect() as conn:
        return set(
            conn.execute(
                sa.text("SELECT DISTINCT task_key FROM app.sbx_runs WHERE run_id = :r"),
                {"r": run_id},
            ).scalars()
        )


def assert_oracles(worker: InProcessWorker, run_id: str, *, success: bool) -> None:
    with worker.engine.connect() as conn:
        failed = [
            r
            for r in oracles.check_run(conn, run_id=run_id, expect_success=success)
            if not r.passed
        ]
    assert not failed, failed


def test_canary_two_of_ten_then_approval_runs_the_other_eight(worker: InProcessWorker) -> None:
    run_id, tasks = at_gate(worker, 10)
    approve(worker, run_id, canary=2)
    worker.wait_status(run_id, RunStatus.WAITING_INPUT)
    parked = worker.view(run_id)
    assert parked.nextAction is NextAction.APPROVE_CANARY and parked.lastStep == "ExecuteST"
    canary = execute_output(worker, run_id)
    assert (canary.succeeded, canary.failed) == (2, 0)
    statuses = [task.status for task in canary.raw.tasks]
    assert statuses == ["succeeded"] * 2 + ["pending"] * 8
    assert ran(worker, run_id) == {task.taskKey for task in tasks[:2]}
    approve(worker, run_id)
    worker.wait_status(run_id, RunStatus.SUCCEEDED)
    final = execute_output(worker, run_id)
    assert (final.succeeded, final.failed, final.taskCount) == (10, 0, 10)
    assert ran(worker, run_id) == {task.taskKey for task in tasks}
    assert_oracles(worker, run_id, success=True)
    assert scalar(worker.engine, "SELECT COUNT(*) FROM app.mock_receipts WHERE seen_count > 1") == 0


def test_rejecting_a_canary_ends_the_run_with_its_results_kept(worker: InProcessWorker) -> None:
    run_id, tasks = at_gate(worker, 5)
    approve(worker, run_id, canary=2)
    worker.wait_status(run_id, RunStatus.WAITING_INPUT)
    with worker.engine.begin() as conn:
        service.reject_plan(
            conn, run_id=run_id, body=RejectPlan(rejectedBy="ops", reason="canary looks off")
        )
    final = worker.view(run_id)
    assert final.status is RunStatus.FAILED
    assert final.error == "canary rejected by ops: canary looks off"
    kept = execute_output(worker, run_id)
    assert kept.succeeded == 2
    assert ran(worker, run_id) == {task.taskKey for task in tasks[:2]}
    assert_oracles(worker, run_id, success=False)
    with pytest.raises(IllegalStateError):
        worker.retry(run_id)


def test_a_subset_approval_runs_only_those_and_skips_the_others(worker: InProcessWorker) -> None:
    run_id, tasks = at_gate(worker, 6)
    chosen = [tasks[0].taskKey, tasks[2].taskKey, tasks[4].taskKey]
    approve(worker, run_id, tasks=chosen)
    worker.wait_status(run_id, RunStatus.SUCCEEDED)
    output = execute_output(worker, run_id)
    assert (output.succeeded, output.failed) == (3, 0)
    assert [task.status for task in output.raw.tasks] == ["succeeded", "skipped"] * 3
    assert ran(worker, run_id) == set(chosen)
    assert_oracles(worker, run_id, success=True)
    # ExecuteST refuses any task outside the approved set
    with pytest.raises(AppError, match="outside the approved task set"):
        _refuse_unapproved(worker.engine, run_id, [TaskRun(spec=tasks[1])])


@pytest.mark.parametrize(
    "scope",
    [{"tasks": ["not-a-task"]}, {"canary": 3}, {"canary": 9}],
)
def test_an_impossible_scope_is_a_400_that_writes_nothing(
    worker: InProcessWorker, scope: dict[str, object]
) -> None:
    run_id, _ = at_gate(worker, 3)
    before = ledger_counts(worker.engine)
    with pytest.raises(InvalidRequestError):
        approve(worker, run_id, **scope)
    assert ledger_counts(worker.engine) == before
    assert worker.status(run_id) is RunStatus.WAITING_INPUT
