"""The approval gate: nothing executes before approval, and waiting costs no queue slot."""

from __future__ import annotations

import time

import httpx
import pytest
import sqlalchemy as sa

from sisu_kodo.client import SisuClient
from sisu_kodo.contracts.runs import NextAction, RunStatus
from tests.fixtures.processes import TEST_ENV, Stack
from tests.fixtures.runs import execute_tasks, run_to_gate, scalar, start_run, wait_status

pytestmark = pytest.mark.integration


def test_gate_blocks_execution_until_approved(client: SisuClient, db: sa.Engine) -> None:
    run = run_to_gate(client, steps=3, partition="tenant-gate")
    assert run.lastStep == "DecideST"
    assert run.nextAction is NextAction.APPROVE_PLAN
    time.sleep(1.0)  # give a (wrongly) eager worker every chance to start tasks
    assert scalar(db, "SELECT COUNT(*) FROM app.sbx_runs WHERE run_id = :r", r=run.runId) == 0
    assert (
        scalar(
            db,
            "SELECT COUNT(*) FROM dbos.workflow_status WHERE queue_name = 'sbxQ'"
            " AND workflow_uuid IN (SELECT 'task-' || (t->>'taskKey') FROM app.run_steps,"
            " jsonb_array_elements(output->'tasks') t WHERE run_id = :r AND step_id = 'DecideST')",
            r=run.runId,
        )
        == 0
    )
    assert client.get_run(run.runId).status is RunStatus.WAITING_INPUT
    client.approve_plan(run.runId, "ops-lead")
    done = wait_status(client, run.runId, RunStatus.SUCCEEDED)
    assert len(execute_tasks(done)) == 3


def test_events_endpoint_approves_and_rejects(client: SisuClient, stack: Stack) -> None:
    approved = run_to_gate(client, partition="tenant-gate")
    response = httpx.post(
        f"{stack.base_url}/runs/{approved.runId}/events",
        json={"type": "approve-plan", "payload": {"approvedBy": "ops-lead"}},
    )
    assert response.status_code == 202
    wait_status(client, approved.runId, RunStatus.SUCCEEDED)

    rejected = run_to_gate(client, partition="tenant-gate")
    response = httpx.post(
        f"{stack.base_url}/runs/{rejected.runId}/events",
        json={"type": "reject-plan", "payload": {"rejectedBy": "ops-lead", "reason": "too risky"}},
    )
    assert response.status_code == 202
    final = client.get_run(rejected.runId)
    assert final.status is RunStatus.FAILED
    assert final.error == "plan rejected by ops-lead: too risky"
    assert [e.type for e in client.events(rejected.runId)][-1] == "plan.rejected"
    again = httpx.post(
        f"{stack.base_url}/runs/{rejected.runId}/approve-plan", json={"approvedBy": "late"}
    )
    assert again.status_code == 409 and again.json()["code"] == "illegal_state"


def test_parked_runs_hold_no_queue_slot(client: SisuClient) -> None:
    """More runs of one tenant wait for approval than intentQ admits per partition,
    and yet one more run of that tenant still reaches the gate."""
    limit = int(TEST_ENV["SISU_INTENT_PARTITION_CONCURRENCY"])
    parked = [run_to_gate(client, partition="tenant-parked", steps=1) for _ in range(limit + 2)]
    assert all(run.status is RunStatus.WAITING_INPUT for run in parked)
    extra = start_run(client, partition="tenant-parked", steps=1)
    assert wait_status(client, extra, RunStatus.WAITING_INPUT, timeout=20).lastStep == "DecideST"
    # and approving one of the parked runs still executes it
    client.approve_plan(parked[0].runId, "ops-lead")
    wait_status(client, parked[0].runId, RunStatus.SUCCEEDED)
