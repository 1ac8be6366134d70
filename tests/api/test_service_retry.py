"""service.retry_run in-process on a real ledger: which runs retry, from which step, counted."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import sqlalchemy as sa

from sisu_kodo.api import service
from sisu_kodo.api.gateway import Enqueue
from sisu_kodo.contracts.runs import NextAction, RejectPlan, RunStatus, StepId
from sisu_kodo.errors import IllegalStateError, RetryDriftError
from sisu_kodo.workflows.names import (
    EXECUTE_WORKFLOW,
    PLAN_WORKFLOW,
    execute_workflow_id,
    plan_workflow_id,
)
from tests.fixtures.ledger import finish_steps, move, started_run, unit_of_work
from tests.fixtures.runs import rows, scalar

pytestmark = pytest.mark.postgres

RUNNING, FAILED = RunStatus.RUNNING, RunStatus.RETRIES_EXCEEDED


def _retry_count(engine: sa.Engine, run_id: str) -> int:
    return int(scalar(engine, "SELECT retry_count FROM app.runs WHERE id = :r", r=run_id))


def test_a_succeeded_run_is_retry_drift(ledger: sa.Engine) -> None:
    run_id = started_run(ledger)
    move(ledger, run_id, RUNNING, RunStatus.SUCCEEDED)
    with pytest.raises(RetryDriftError) as raised, unit_of_work(ledger) as unit:
        service.retry_run(unit, run_id=run_id)
    assert raised.value.details == {"runId": run_id, "status": "succeeded"}
    assert unit.pending == [] and _retry_count(ledger, run_id) == 0


@pytest.mark.parametrize(
    ("path", "next_action"),
    [
        ((), NextAction.NONE),
        ((RUNNING,), NextAction.NONE),
        ((RUNNING, RunStatus.WAITING_INPUT), NextAction.APPROVE_PLAN),
        ((RUNNING, RunStatus.CANCELED), NextAction.NONE),
    ],
    ids=["queued", "running", "waiting_input", "canceled"],
)
def test_a_run_that_has_not_failed_is_illegal_state(
    ledger: sa.Engine, path: tuple[RunStatus, ...], next_action: NextAction
) -> None:
    run_id = started_run(ledger)
    move(ledger, run_id, *path, next_action=next_action)
    status = path[-1] if path else RunStatus.QUEUED
    with pytest.raises(IllegalStateError) as raised, unit_of_work(ledger) as unit:
        service.retry_run(unit, run_id=run_id)
    assert raised.value.details == {"runId": run_id, "status": status.value}
    assert unit.pending == [] and _retry_count(ledger, run_id) == 0


def test_a_rejected_plan_is_illegal_state(ledger: sa.Engine) -> None:
    run_id = started_run(ledger)
    move(ledger, run_id, RUNNING, RunStatus.WAITING_INPUT, next_action=NextAction.APPROVE_PLAN)
    with ledger.begin() as conn:
        service.reject_plan(conn, run_id=run_id, body=RejectPlan(rejectedBy="ops-lead"))
    rejected = pytest.raises(IllegalStateError, match="rejected by ops-lead")
    with rejected as raised, unit_of_work(ledger) as unit:
        service.retry_run(unit, run_id=run_id)
    assert raised.value.details == {"runId": run_id, "status": "failed"}
    assert unit.pending == [] and _retry_count(ledger, run_id) == 0


@pytest.mark.parametrize(
    ("finished", "from_step", "workflow", "workflow_id"),
    [
        ((), StepId.COMPILE, PLAN_WORKFLOW, plan_workflow_id),
        ((StepId.COMPILE,), StepId.DECIDE, PLAN_WORKFLOW, plan_workflow_id),
        ((StepId.COMPILE, StepId.DECIDE), StepId.EXECUTE, EXECUTE_WORKFLOW, execute_workflow_id),
    ],
    ids=["compile", "decide", "execute"],
)
def test_retry_resumes_at_the_first_unfinished_step(
    ledger: sa.Engine,
    finished: tuple[StepId, ...],
    from_step: StepId,
    workflow: str,
    workflow_id: Callable[[str, int], str],
) -> None:
    run_id = started_run(ledger)
    finish_steps(ledger, run_id, *finished)
    move(ledger, run_id, RUNNING, FAILED, next_action=NextAction.REPAIR)
    with unit_of_work(ledger) as unit:
        accepted = service.retry_run(unit, run_id=run_id)
    assert (accepted.runId, accepted.fromStep, accepted.retryCount) == (run_id, from_step, 1)
    assert accepted.status is RunStatus.QUEUED
    assert unit.pending == [Enqueue(workflow, workflow_id(run_id, 1), "tenant-svc", (run_id,))]


def test_each_retry_counts_and_gets_its_own_workflow(ledger: sa.Engine) -> None:
    run_id = started_run(ledger)
    finish_steps(ledger, run_id, StepId.COMPILE, StepId.DECIDE)
    enqueued: list[str] = []
    for round_number in (1, 2):
        move(ledger, run_id, RUNNING, FAILED, next_action=NextAction.REPAIR)
        with unit_of_work(ledger) as unit:
            accepted = service.retry_run(unit, run_id=run_id)
        assert accepted.retryCount == round_number == _retry_count(ledger, run_id)
        enqueued += [item.workflow_id for item in unit.pending]
    assert enqueued == [execute_workflow_id(run_id, 1), execute_workflow_id(run_id, 2)]
    retried = scalar(
        ledger,
        "SELECT array_agg(detail ORDER BY seq) FROM app.run_events"
        " WHERE run_id = :r AND type = 'run.retried'",
        r=run_id,
    )
    assert [(d["fromStep"], d["retryCount"]) for d in retried] == [
        ("ExecuteST", 1),
        ("ExecuteST", 2),
    ]
    status = rows(ledger, "SELECT status, next_action FROM app.runs WHERE id = :r", r=run_id)
    assert [tuple(row) for row in status] == [("queued", "NONE")]
