"""The run watchdog in-process on a real ledger and DBOS schema (no worker runs here)."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from dbos import DBOSClient

from sisu_kodo.config import APP_NAME
from sisu_kodo.contracts.runs import NextAction, RunStatus
from sisu_kodo.worker.recovery import RunWatchdog
from sisu_kodo.workflows.names import INTENT_QUEUE, PLAN_WORKFLOW
from tests.fixtures.ledger import move, started_run
from tests.fixtures.runs import rows, scalar

pytestmark = pytest.mark.postgres

FAILED_EVENTS = "SELECT COUNT(*) FROM app.run_events WHERE run_id = :r AND type = 'run.failed'"


@pytest.fixture(scope="module")
def dbos_client(ledger: sa.Engine) -> Iterator[DBOSClient]:
    client = DBOSClient(system_database_engine=ledger, application_name=APP_NAME)
    yield client
    client.destroy()


@pytest.fixture(autouse=True)
def _only_this_tests_runs(ledger: sa.Engine) -> None:
    """Runs left queued by an earlier test would be stuck too: settle them first."""
    with ledger.begin() as conn:
        conn.execute(sa.text("UPDATE app.runs SET status = 'canceled' WHERE status <> 'canceled'"))


def _watchdog(ledger: sa.Engine, client: DBOSClient, **options: float) -> RunWatchdog:
    return RunWatchdog(
        ledger,
        client,
        grace_seconds=options.get("grace_seconds", 0),
        batch=int(options.get("batch", 500)),
    )


def test_a_run_without_any_workflow_is_failed_once_by_racing_watchdogs(
    ledger: sa.Engine, dbos_client: DBOSClient
) -> None:
    run_id = started_run(ledger)  # in-process: its plan workflow was never enqueued
    watchdogs = [_watchdog(ledger, dbos_client) for _ in range(4)]
    failed: list[list[str]] = []
    start = threading.Barrier(len(watchdogs))

    def sweep(watchdog: RunWatchdog) -> None:
        start.wait()
        failed.append(watchdog.sweep_once())

    threads = [threading.Thread(target=sweep, args=(each,)) for each in watchdogs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(run for each in failed for run in each) == [run_id]
    assert scalar(ledger, FAILED_EVENTS, r=run_id) == 1
    [(status, next_action, error)] = rows(
        ledger, "SELECT status, next_action, error FROM app.runs WHERE id = :r", r=run_id
    )
    assert (status, next_action) == (RunStatus.FAILED.value, NextAction.REPAIR.value)
    assert error == (
        f"stuck queued: no live workflow in DBOS ({run_id} missing, {run_id}-execute missing)"
    )
    [detail] = [
        row[0]
        for row in rows(
            ledger,
            "SELECT detail FROM app.run_events WHERE run_id = :r AND type = 'run.failed'",
            r=run_id,
        )
    ]
    assert detail["watchdog"] is True and detail["error"] == error


def test_live_parked_and_recent_runs_are_left_alone(
    ledger: sa.Engine, dbos_client: DBOSClient
) -> None:
    live = started_run(ledger)
    dbos_client.enqueue(
        {
            "workflow_name": PLAN_WORKFLOW,
            "queue_name": INTENT_QUEUE,
            "workflow_id": live,
            "queue_partition_key": "tenant-svc",
        },
        live,
    )
    parked = started_run(ledger)
    move(
        ledger,
        parked,
        RunStatus.RUNNING,
        RunStatus.WAITING_INPUT,
        next_action=NextAction.APPROVE_PLAN,
    )
    recent = started_run(ledger)

    assert _watchdog(ledger, dbos_client, grace_seconds=3600).sweep_once() == []
    assert _watchdog(ledger, dbos_client).sweep_once() == [recent]
    statuses = dict(
        rows(ledger, "SELECT id, status FROM app.runs WHERE id IN (:a, :b)", a=live, b=parked)
    )
    assert statuses == {live: "queued", parked: "waiting_input"}


def test_small_batches_walk_every_run_over_successive_sweeps(
    ledger: sa.Engine, dbos_client: DBOSClient
) -> None:
    stuck = sorted(started_run(ledger) for _ in range(3))
    watchdog = _watchdog(ledger, dbos_client, batch=2)
    assert watchdog.sweep_once() == stuck[:2]
    assert watchdog.sweep_once() == stuck[2:]
    assert watchdog.sweep_once() == []
