"""No run is ever stuck: a workflow that ends in error, in DBOS or in our code, fails its
run with REPAIR; `sisu doctor` names stuck runs; a retry takes the failed run on."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa

from sisu_kodo.client import SisuClient
from sisu_kodo.contracts.runs import NextAction, RunStart, RunStatus, RunView, Workload
from sisu_kodo.db.engine import create_engine
from tests.fixtures.processes import Stack
from tests.fixtures.runs import run_to_gate, scalar, start_run, wait_status
from tests.integration.test_ops_cli import sisu

pytestmark = pytest.mark.integration

NESTING = 500
DOCTOR_LINE = "no run stuck without a live workflow"
FAILED_BY_WATCHDOG = (
    "SELECT COUNT(*) FROM app.run_events WHERE run_id = :r AND type = 'run.failed'"
    " AND (detail->>'watchdog')::boolean"
)


def _nested(depth: int) -> dict[str, Any]:
    return json.loads('{"a":' * depth + "{}" + "}" * depth)  # type: ignore[no-any-return]


def _insert_intent(engine: sa.Engine, inputs_json: str) -> str:
    """An intent written past the API's door check (which refuses deep nesting)."""
    intent_id = f"it_{uuid.uuid4().hex}"
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO app.intents (id, goal, inputs, constraints)"
                " VALUES (:id, 'build logic', CAST(:inputs AS jsonb), '{}')"
            ),
            {"id": intent_id, "inputs": inputs_json},
        )
    return intent_id


def _start(client: SisuClient, intent_id: str) -> str:
    start = RunStart(queuePartitionKey="tenant-stuck", workload=Workload(concurrency=1, steps=2))
    return client.start_run(intent_id, start).runId


def _assert_failed_for_repair(run: RunView, *fragments: str) -> None:
    assert run.status is RunStatus.FAILED and run.nextAction is NextAction.REPAIR
    for fragment in fragments:
        assert fragment in (run.error or ""), run.error


def test_deeply_nested_inputs_fail_the_run_and_a_retry_without_them_passes(
    client: SisuClient, db: sa.Engine
) -> None:
    intent_id = _insert_intent(db, json.dumps(_nested(NESTING)))
    run_id = _start(client, intent_id)

    # DBOS cannot pickle the begin step's output (it carries the inputs) to checkpoint it.
    failed = wait_status(client, run_id, RunStatus.FAILED, RunStatus.WAITING_INPUT)
    _assert_failed_for_repair(failed, "planning failed", "recursion")
    assert [e.type for e in client.events(run_id)].count("run.failed") == 1

    with db.begin() as conn:  # the cause goes away
        conn.execute(
            sa.text("UPDATE app.intents SET inputs = '{}' WHERE id = :id"), {"id": intent_id}
        )
    accepted = client.retry(run_id)
    assert (accepted.fromStep, accepted.retryCount) == ("CompileST", 1)
    gate = wait_status(client, run_id, RunStatus.WAITING_INPUT, RunStatus.FAILED)
    assert gate.status is RunStatus.WAITING_INPUT and gate.error is None
    client.approve_plan(run_id, "ops-lead")
    done = wait_status(
        client, run_id, RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.RETRIES_EXCEEDED
    )
    assert done.status is RunStatus.SUCCEEDED


def test_watchdog_fails_runs_whose_workflows_dbos_ended_or_lost(
    make_stack: Callable[..., Stack],
) -> None:
    stack = make_stack()
    worker = stack.start_worker(SISU_WATCHDOG_GRACE_SECONDS="1")
    stack.start_api()
    engine = create_engine(stack.database_url, pool_size=1)
    try:
        with SisuClient(stack.base_url) as client:
            parked = run_to_gate(client, goal="parked at the gate", steps=2)
            worker.stop()  # no worker: the runs below stay queued, their workflows ENQUEUED
            errored, deleted, dead_letter, healthy = (
                start_run(client, goal=f"stuck {n}", steps=2, partition="tenant-stuck")
                for n in range(4)
            )
            with engine.begin() as conn:  # DBOS's rows changed behind our back
                for run_id, status in (
                    (errored, "ERROR"),
                    (dead_letter, "MAX_RECOVERY_ATTEMPTS_EXCEEDED"),
                ):
                    conn.execute(
                        sa.text(
                            "UPDATE dbos.workflow_status SET status = :s WHERE workflow_uuid = :r"
                        ),
                        {"s": status, "r": run_id},
                    )
                conn.execute(
                    sa.text("DELETE FROM dbos.workflow_status WHERE workflow_uuid = :r"),
                    {"r": deleted},
                )

            # Before any watchdog acts, the doctor names exactly the stuck runs.
            report = sisu("doctor", env=stack.env(SISU_WATCHDOG_GRACE_SECONDS="0"))
            stuck_line = next(line for line in report.stdout.splitlines() if DOCTOR_LINE in line)
            assert report.returncode == 1 and "FAIL" in stuck_line, report.stdout
            for run_id in (errored, deleted, dead_letter):  # a long cell wraps: whole report
                assert run_id in report.stdout
            for run_id in (healthy, parked.runId):
                assert run_id not in report.stdout
            assert client.get_run(errored).status is RunStatus.QUEUED

            stack.start_worker("worker-2", SISU_WATCHDOG_GRACE_SECONDS="1")
            _assert_failed_for_repair(
                wait_status(client, errored, RunStatus.FAILED), f"workflow {errored} is ERROR"
            )
            _assert_failed_for_repair(
                wait_status(client, dead_letter, RunStatus.FAILED),
                "is MAX_RECOVERY_ATTEMPTS_EXCEEDED",
            )
            _assert_failed_for_repair(
                wait_status(client, deleted, RunStatus.FAILED), "no live workflow", "missing"
            )
            for run_id in (errored, deleted, dead_letter):
                assert scalar(engine, FAILED_BY_WATCHDOG, r=run_id) == 1
            # A live workflow and a parked run were never touched.
            assert wait_status(client, healthy, RunStatus.WAITING_INPUT).error is None
            assert client.get_run(parked.runId).status is RunStatus.WAITING_INPUT
            assert scalar(engine, FAILED_BY_WATCHDOG, r=parked.runId) == 0

            report = sisu("doctor", env=stack.env(SISU_WATCHDOG_GRACE_SECONDS="0"))
            stuck_line = next(line for line in report.stdout.splitlines() if DOCTOR_LINE in line)
            assert "PASS" in stuck_line, report.stdout

            # The cause is gone (fresh workflow ids): the retry takes the run to the end.
            accepted = client.retry(deleted)
            assert (accepted.fromStep, accepted.retryCount) == ("CompileST", 1)
            wait_status(client, deleted, RunStatus.WAITING_INPUT)
            client.approve_plan(deleted, "ops-lead")
            done = wait_status(
                client, deleted, RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.RETRIES_EXCEEDED
            )
            assert done.status is RunStatus.SUCCEEDED
    finally:
        engine.dispose()
