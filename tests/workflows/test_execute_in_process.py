"""The execute side in one process: a real DBOS worker on a fresh PostgreSQL database
(fan-out window, aggregation, retry rounds, and cancel through the cancel watcher).

The fan-out window is checked against what DBOS recorded: the execute workflow's
`enqueue_tasks` and `await_tasks` checkpoints say which task workflows were in flight
at every moment, whatever the timing of this run was.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import sqlalchemy as sa
from dbos import DBOS

from sisu_kodo.api import service
from sisu_kodo.contracts.intents import IntentCreate
from sisu_kodo.contracts.runs import ExecuteOutput, RunStart, RunStatus, StepId, Workload
from sisu_kodo.db import artifacts, oracles, sandbox_attempts
from sisu_kodo.errors import ConflictError, NotFoundError
from sisu_kodo.worker.cancel_watch import CancelWatcher
from sisu_kodo.workflows import runtime
from sisu_kodo.workflows.names import execute_workflow_id
from tests.fixtures.in_process import EXECUTOR_ID, InProcessWorker
from tests.fixtures.postgres import TestDatabases
from tests.fixtures.processes import wait_for
from tests.fixtures.runs import rows, scalar

CONCURRENCY = 3
CANCEL_TASKS = 3


@pytest.fixture(scope="module")
def worker(databases: TestDatabases) -> Iterator[InProcessWorker]:
    started = InProcessWorker.start(
        databases.create(),
        mock_latency_ms=5,
        task_retry_interval_seconds=0.01,
        queue_poll_seconds=0.05,
        # The sbxQ limits stay above the run's window, so the window is what binds.
        sbx_partition_concurrency=4 * CONCURRENCY,
        sbx_worker_concurrency=4 * CONCURRENCY,
        # Slots are freed on the task listener's wake-ups: were they lost, each wait would
        # last this long and the runs would miss their deadlines.
        task_recheck_seconds=300,
    )
    yield started
    started.stop()


@dataclass(frozen=True)
class WindowTrace:
    batches: list[list[str]]  # each enqueue_tasks call's workflow ids, in order
    peak_in_flight: int
    refilled_every_time: bool  # each batch filled the window (or took every waiting task)


def window_trace(run_id: str, *, total: int, concurrency: int) -> WindowTrace:
    """Replay the execute workflow's recorded fan-out steps."""
    in_flight: set[str] = set()
    waiting = total
    batches: list[list[str]] = []
    peak, refilled = 0, True
    for step in DBOS.list_workflow_steps(execute_workflow_id(run_id)):
        output = step["output"]
        if step["function_name"] == "enqueue_tasks":
            assert isinstance(output, list)
            batch = [str(workflow_id) for workflow_id in output]
            refilled &= len(in_flight) + len(batch) == min(concurrency, len(in_flight) + waiting)
            batches.append(batch)
            in_flight.update(batch)
            waiting -= len(batch)
            peak = max(peak, len(in_flight))
        elif step["function_name"] == "await_tasks":
            assert isinstance(output, dict)
            ended = {str(workflow_id): str(status) for workflow_id, status in output.items()}
            assert ended and set(ended) <= in_flight, "await_tasks reports only its own tasks"
            in_flight -= set(ended)
    assert not in_flight and waiting == 0, "every task was enqueued and awaited"
    return WindowTrace(batches, peak, refilled)


def test_fan_out_keeps_the_window_and_enqueues_every_task_once(worker: InProcessWorker) -> None:
    tasks = 10
    run_id = worker.run_to_end(
        "build logic", steps=tasks, concurrency=CONCURRENCY, partition="tenant-window"
    )
    assert worker.status(run_id) is RunStatus.SUCCEEDED

    trace = window_trace(run_id, total=tasks, concurrency=CONCURRENCY)
    enqueued = [workflow_id for batch in trace.batches for workflow_id in batch]
    assert len(enqueued) == len(set(enqueued)) == tasks
    assert trace.peak_in_flight == CONCURRENCY
    assert len(trace.batches[0]) == CONCURRENCY
    assert len(trace.batches) > 1, "completions freed slots that later batches refilled"
    assert trace.refilled_every_time
    assert (
        scalar(worker.engine, "SELECT COUNT(*) FROM app.mock_receipts WHERE run_id = :r", r=run_id)
        == tasks
    )


def test_a_window_wider_than_the_run_enqueues_everything_at_once(
    worker: InProcessWorker,
) -> None:
    run_id = worker.run_to_end("build logic", steps=2, concurrency=5, partition="tenant-wide")

    trace = window_trace(run_id, total=2, concurrency=5)
    assert [len(batch) for batch in trace.batches] == [2]
    assert worker.status(run_id) is RunStatus.SUCCEEDED


def test_finish_execute_records_success(worker: InProcessWorker) -> None:
    run_id = worker.run_to_end("build logic", steps=4, concurrency=2, partition="tenant-ok")

    view = worker.view(run_id)
    output = view.execute_output()
    assert isinstance(output, ExecuteOutput)
    assert (output.errCode, output.taskCount, output.succeeded, output.failed) == ("NONE", 4, 4, 0)
    assert [task.status for task in view.execute_tasks()] == ["succeeded"] * 4
    assert view.error is None and view.nextAction.value == "NONE"


def test_finish_execute_records_retries_exceeded_with_the_first_failure(
    worker: InProcessWorker,
) -> None:
    # "fail me" makes the last task's command exit 1: CMD_NONZERO, never retried.
    run_id = worker.run_to_end("fail me", steps=3, concurrency=2, partition="tenant-fail")

    view = worker.view(run_id)
    assert view.status is RunStatus.RETRIES_EXCEEDED and view.nextAction.value == "REPAIR"
    output = view.execute_output()
    assert isinstance(output, ExecuteOutput)
    assert (output.errCode, output.succeeded, output.failed) == ("CMD_NONZERO", 2, 1)
    (failed,) = output.failed_tasks()
    assert failed.index == 3 and failed.attempt == 1
    assert view.error == (
        f"task {failed.name} ({failed.taskKey[:12]}) failed with CMD_NONZERO"
        " at attempt 1, exit code 1; 1 of 3 task(s) failed"
    )


def test_a_retried_round_records_its_attempt_offset(worker: InProcessWorker) -> None:
    # "fail once": the last task's first attempt exits 1, the retry's attempt 2 succeeds.
    run_id = worker.run_to_end("fail once", steps=2, concurrency=2, partition="tenant-retry")
    assert worker.status(run_id) is RunStatus.RETRIES_EXCEEDED
    worker.retry(run_id)
    worker.wait_status(run_id, RunStatus.SUCCEEDED)

    with worker.engine.connect() as conn:
        attempts = conn.execute(
            sa.text(
                "SELECT attempt, attempt_offset, response ? 'attemptOffset' FROM app.sbx_runs"
                " WHERE run_id = :r ORDER BY attempt, task_key"
            ),
            {"r": run_id},
        ).all()
    # Round one: both tasks at attempt 1; round two re-runs only the failed one.
    assert [tuple(row) for row in attempts] == [(1, 0, False), (1, 0, False), (2, 1, False)]


def test_the_task_ledger_read_sees_every_round_in_one_statement(worker: InProcessWorker) -> None:
    run_id = worker.run_to_end("fail once", steps=2, concurrency=2, partition="tenant-ledger")
    worker.retry(run_id)
    worker.wait_status(run_id, RunStatus.SUCCEEDED)
    with worker.engine.connect() as conn:
        retried = conn.execute(
            sa.text("SELECT task_key FROM app.sbx_runs WHERE run_id = :r AND attempt = 2"),
            {"r": run_id},
        ).scalar_one()
        ledger = sandbox_attempts.task_ledger(
            conn, run_id=run_id, step_id=StepId.EXECUTE, task_key=retried, after=1
        )
        with pytest.raises(NotFoundError):
            sandbox_attempts.task_ledger(
                conn, run_id="run-missing", step_id=StepId.EXECUTE, task_key=retried, after=0
            )
    assert ledger == sandbox_attempts.TaskLedger(
        pending_attempt=None,
        pending_ref=None,
        latest_attempt=2,
        latest_err_code="NONE",
        latest_offset=1,
        last_attempt=2,
        run_status=RunStatus.SUCCEEDED,
    )


def test_an_attempts_artifacts_are_written_once_and_a_changed_one_conflicts(
    worker: InProcessWorker,
) -> None:
    run_id = worker.run_to_end("artifacts", steps=1, concurrency=1, partition="tenant-artifacts")
    with worker.engine.begin() as conn:
        uri, kind, content = conn.execute(
            sa.text(
                "SELECT uri, kind, content FROM app.artifacts WHERE run_id = :r AND kind = 'stdout'"
            ),
            {"r": run_id},
        ).one()
        task_key = conn.execute(
            sa.text("SELECT task_key FROM app.sbx_runs WHERE run_id = :r"), {"r": run_id}
        ).scalar_one()
        stored = artifacts.NewArtifact.of(uri, kind, bytes(content))
        extra = artifacts.NewArtifact.of(f"{uri}-extra", "stdout", b"more")
        # The same bytes again change nothing; a new URI in the same write is stored.
        metas = artifacts.put_artifacts(
            conn, [stored, extra], run_id=run_id, step_id=StepId.EXECUTE, task_key=task_key
        )
        assert [meta.sha256 for meta in metas] == [stored.sha256, extra.sha256]
    assert (
        scalar(worker.engine, "SELECT COUNT(*) FROM app.artifacts WHERE uri = :u", u=extra.uri) == 1
    )
    changed = artifacts.NewArtifact.of(uri, kind, b"other bytes")
    with pytest.raises(ConflictError), worker.engine.begin() as conn:
        artifacts.put_artifacts(
            conn, [changed], run_id=run_id, step_id=StepId.EXECUTE, task_key=task_key
        )


# Cancel: the cancel watcher stops in-flight attempts of a canceled run, each started
# attempt gets one CANCELED outcome, and nothing succeeds after it.


def start_long_run(worker: InProcessWorker) -> str:
    """A run of CANCEL_TASKS mock tasks that would each take five minutes."""
    with worker.gateway.unit_of_work(worker.engine) as unit:
        intent_id = service.create_intent(
            unit.conn, IntentCreate(goal="long work", constraints={"mockLatencyMs": 300_000})
        )
        started = service.start_run(
            unit,
            intent_id=intent_id,
            body=RunStart(
                queuePartitionKey="tenant-cancel",
                workload=Workload(concurrency=CANCEL_TASKS, steps=CANCEL_TASKS),
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
    wait_for(
        lambda: account(worker.engine, run_id).started == CANCEL_TASKS, what="attempts started"
    )
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
    assert outcomes == [("CANCELED", "mock: run canceled")] * CANCEL_TASKS, "killed, not finished"
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
