"""Cancel in one process: the cancel watcher stops in-flight mock attempts of a canceled
run, each started attempt gets one CANCELED outcome, and nothing succeeds after it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from sisu_kodo.api import service
from sisu_kodo.contracts.intents import IntentCreate
from sisu_kodo.contracts.runs import RunStart, RunStatus, Workload
from sisu_kodo.db import oracles, sandbox_attempts
from sisu_kodo.worker.cancel_watch import CancelWatcher
from sisu_kodo.workflows import runtime
from tests.fixtures.in_process import EXECUTOR_ID, InProcessWorker
from tests.fixtures.postgres import TestDatabases
from tests.fixtures.processes import wait_for
from tests.fixtures.runs import rows, scalar

pytestmark = pytest.mark.postgres

TASKS = 3


@pytest.fixture(scope="module")
def worker(databases: TestDatabases) -> Iterator[InProcessWorker]:
    started = InProcessWorker.start(databases.create(), queue_poll_seconds=0.05)
    yield started
    started.stop()


def start_long_run(worker: InProcessWorker) -> str:
    """A run of TASKS mock tasks that would each take five minutes."""
    with worker.gateway.unit_of_work(worker.engine) as unit:
        intent_id = service.create_intent(
            unit.conn, IntentCreate(goal="long work", constraints={"mockLatencyMs": 300_000})
        )
        started = service.start_run(
            unit,
            intent_id=intent_id,
            body=RunStart(
                queuePartitionKey="tenant-cancel",
                workload=Workload(concurrency=TASKS, steps=TASKS),
            ),
            app_version=worker.settings.topology.app_version,
        )
    return started.runId


def account(engine: sa.Engine, run_id: str) -> sandbox_attempts.AttemptAccount:
    with engine.connect() as conn:
        return sandbox_attempts.account(conn, run_id=run_id)


def test_watcher_cancels_attempts_in_flight(worker: InProcessWorker) -> None:
    run_id = start_long_run(worker)
    worker.wait_status(run_id, RunStatus.WAITING_INPUT)
    worker.approve(run_id)
    wait_for(lambda: account(worker.engine, run_id).started == TASKS, what="attempts started")
    watcher = CancelWatcher(runtime.current(), executor_id=EXECUTOR_ID)
    assert watcher.check() == [], "a running run is left alone"
    with worker.gateway.unit_of_work(worker.engine) as unit:
        service.cancel_run(unit, run_id=run_id)
    assert watcher.check() == [run_id]
    wait_for(lambda: account(worker.engine, run_id).unrecorded == 0, what="every outcome")
    outcomes = rows(
        worker.engine,
        "SELECT err_code, response->>'errMessage' FROM app.sbx_runs WHERE run_id = :r",
        r=run_id,
    )
    assert outcomes == [("CANCELED", "mock: run canceled")] * TASKS, "killed, not finished"
    assert watcher.check() == [], "nothing left to stop"
    receipts = scalar(
        worker.engine, "SELECT COUNT(*) FROM app.mock_receipts WHERE run_id = :r", r=run_id
    )
    assert receipts == 0
    with worker.engine.connect() as conn:
        failed = [
            r for r in oracles.check_run(conn, run_id=run_id, expect_success=False) if not r.passed
        ]
    assert not failed
