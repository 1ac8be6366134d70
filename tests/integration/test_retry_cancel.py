"""Retry from the failed step (same runId, succeeded tasks kept) and cancel."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from sisu_kodo.client import SisuClient
from sisu_kodo.contracts.runs import NextAction, RunStatus
from sisu_kodo.errors import IllegalStateError, RetryDriftError
from tests.fixtures.processes import wait_for
from tests.fixtures.runs import execute_tasks, rows, run_to_end, run_to_gate, scalar, wait_status

pytestmark = pytest.mark.integration

ENDED = (RunStatus.SUCCEEDED, RunStatus.RETRIES_EXCEEDED, RunStatus.FAILED)


def test_retry_resumes_from_the_failed_step_and_keeps_successes(
    client: SisuClient, db: sa.Engine
) -> None:
    failed = run_to_end(client, goal="fail once then pass", steps=4, concurrency=2)
    assert failed.status is RunStatus.RETRIES_EXCEEDED and failed.nextAction is NextAction.REPAIR
    broken = [t for t in execute_tasks(failed) if t["status"] == "failed"]
    kept = [t for t in execute_tasks(failed) if t["status"] == "succeeded"]
    assert len(broken) == 1 and len(kept) == 3

    accepted = client.retry(failed.runId)
    assert (accepted.runId, accepted.fromStep, accepted.retryCount) == (
        failed.runId,
        "ExecuteST",
        1,
    )
    repaired = wait_status(client, failed.runId, *ENDED)
    assert repaired.status is RunStatus.SUCCEEDED and repaired.retryCount == 1
    steps = {s.stepId: s.attempt for s in repaired.steps}
    assert steps == {"CompileST": 1, "DecideST": 1, "ExecuteST": 2}  # no completed step re-ran
    by_key = {t["taskKey"]: t for t in execute_tasks(repaired)}
    assert by_key[broken[0]["taskKey"]]["attempt"] == 2
    for task in kept:
        assert by_key[task["taskKey"]]["attempt"] == 1  # not re-executed
        assert by_key[task["taskKey"]]["sandboxRef"] == task["sandboxRef"]
    attempts = dict(
        rows(
            db,
            "SELECT task_key, COUNT(*) FROM app.sbx_runs WHERE run_id = :r GROUP BY 1",
            r=failed.runId,
        )
    )
    assert attempts[broken[0]["taskKey"]] == 2
    assert all(attempts[t["taskKey"]] == 1 for t in kept)
    assert (
        scalar(
            db, "SELECT MAX(seen_count) FROM app.mock_receipts WHERE run_id = :r", r=failed.runId
        )
        == 1
    )
    assert (
        scalar(db, "SELECT COUNT(*) FROM app.mock_receipts WHERE run_id = :r", r=failed.runId) == 4
    )
    types = [e.type for e in client.events(failed.runId)]
    assert types.count("run.retried") == 1 and types[-1] == "run.succeeded"


def test_retry_can_repeat_after_a_second_failure(client: SisuClient, db: sa.Engine) -> None:
    failed = run_to_end(client, goal="fail me every time", steps=2)
    assert failed.status is RunStatus.RETRIES_EXCEEDED
    for round_number in (1, 2):
        accepted = client.retry(failed.runId)
        assert accepted.retryCount == round_number and accepted.fromStep == "ExecuteST"
        again = wait_status(client, failed.runId, *ENDED)
        assert again.status is RunStatus.RETRIES_EXCEEDED and again.retryCount == round_number
        broken = [t for t in execute_tasks(again) if t["status"] == "failed"]
        assert [t["attempt"] for t in broken] == [round_number + 1]
        assert "CMD_NONZERO" in (again.error or "")


def test_retry_of_succeeded_run_is_retry_drift(client: SisuClient, db: sa.Engine) -> None:
    done = run_to_end(client, steps=1)
    with pytest.raises(RetryDriftError):
        client.retry(done.runId)
    assert client.get_run(done.runId).retryCount == 0


def test_retry_of_a_live_run_is_illegal_state(client: SisuClient) -> None:
    waiting = run_to_gate(client, steps=1)
    with pytest.raises(IllegalStateError):
        client.retry(waiting.runId)
    assert client.get_run(waiting.runId).status is RunStatus.WAITING_INPUT


def test_cancel_stops_the_run_and_its_tasks(client: SisuClient, db: sa.Engine) -> None:
    run = run_to_gate(
        client, goal="slow cancel me", steps=12, concurrency=2, constraints={"mockLatencyMs": 500}
    )
    client.approve_plan(run.runId, "ops-lead")
    wait_for(
        lambda: scalar(db, "SELECT COUNT(*) FROM app.sbx_runs WHERE run_id = :r", r=run.runId),
        timeout=30,
        what="the first task to finish",
    )
    canceled = client.cancel(run.runId)
    assert canceled.status is RunStatus.CANCELED
    assert client.get_run(run.runId).status is RunStatus.CANCELED
    # Settled: no task workflow of the run can still run, and every started attempt has
    # its outcome; from then on nothing can write another attempt.
    wait_for(
        lambda: scalar(db, _LIVE_TASKS_OR_OPEN_ATTEMPTS, r=run.runId) == 0,
        timeout=30,
        what="the run's task workflows to stop and their attempts to be recorded",
    )
    settled = scalar(db, "SELECT COUNT(*) FROM app.sbx_runs WHERE run_id = :r", r=run.runId)
    succeeded_after_cancel = scalar(
        db,
        "SELECT COUNT(*) FROM app.sbx_runs s JOIN app.run_events e ON e.run_id = s.run_id"
        " WHERE s.run_id = :r AND e.type = 'run.canceled' AND s.err_code = 'NONE'"
        " AND s.created_at > e.at",
        r=run.runId,
    )
    assert succeeded_after_cancel == 0
    assert settled < 12
    statuses = dict(
        rows(
            db,
            "SELECT workflow_uuid, status FROM dbos.workflow_status WHERE workflow_uuid = :w",
            w=f"{run.runId}-execute",
        )
    )
    assert statuses[f"{run.runId}-execute"] == "CANCELLED"
    final = client.get_run(run.runId)
    assert final.status is RunStatus.CANCELED and final.nextAction is NextAction.NONE
    with pytest.raises(IllegalStateError):
        client.cancel(run.runId)
    with pytest.raises(IllegalStateError):
        client.retry(run.runId)


_LIVE_TASKS_OR_OPEN_ATTEMPTS = """
SELECT (SELECT COUNT(*) FROM dbos.workflow_status
        WHERE workflow_uuid IN (SELECT 'task-' || task_key FROM app.run_tasks WHERE run_id = :r)
          AND status IN ('ENQUEUED', 'PENDING', 'DELAYED'))
     + (SELECT COUNT(*) FROM app.sbx_attempts WHERE run_id = :r AND outcome_at IS NULL)
"""
