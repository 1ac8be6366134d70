"""A worker killed with SIGKILL mid fan-out: the run still finishes, no side effect twice."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from sisu_kodo.client import SisuClient
from sisu_kodo.contracts.runs import RunStatus
from sisu_kodo.db.engine import create_engine
from tests.fixtures.processes import Stack, wait_for
from tests.fixtures.runs import execute_tasks, rows, run_to_gate, scalar, wait_status

pytestmark = pytest.mark.integration


def test_sigkill_mid_fan_out_then_restart(make_stack: Callable[..., Stack]) -> None:
    crash = make_stack()
    worker = crash.start_worker("crash-worker")
    crash.start_api()
    engine = create_engine(crash.database_url, pool_size=1)
    try:
        with SisuClient(crash.base_url) as client:
            run = run_to_gate(
                client,
                goal="slow crash proof",
                steps=8,
                concurrency=4,
                constraints={"mockLatencyMs": 700},
            )
            client.approve_plan(run.runId, "ops-lead")
            wait_for(
                lambda: (
                    scalar(
                        engine, "SELECT COUNT(*) FROM app.sbx_runs WHERE run_id = :r", r=run.runId
                    )
                    >= 2
                ),
                timeout=30,
                what="the first tasks to finish",
            )
            worker.kill()
            finished_before = scalar(
                engine, "SELECT COUNT(*) FROM app.sbx_runs WHERE run_id = :r", r=run.runId
            )
            assert finished_before < 8, "the kill must land mid fan-out"
            crash.start_worker("crash-worker")  # same executor id: DBOS recovers its work
            done = wait_status(client, run.runId, RunStatus.SUCCEEDED, timeout=90)
    finally:
        oracle_receipts = scalar(
            engine, "SELECT COUNT(*) FROM app.mock_receipts WHERE seen_count > 1;"
        )
        duplicates = rows(
            engine, "SELECT task_key, COUNT(*) FROM app.sbx_runs GROUP BY 1 HAVING COUNT(*) > 1;"
        )
        receipts = scalar(
            engine, "SELECT COUNT(*) FROM app.mock_receipts WHERE run_id = :r", r=run.runId
        )
        engine.dispose()
    assert oracle_receipts == 0
    assert duplicates == []
    assert receipts == 8
    tasks = execute_tasks(done)
    assert len(tasks) == 8 and {t["status"] for t in tasks} == {"succeeded"}
    steps = {s.stepId: s.attempt for s in done.steps}
    assert steps == {"CompileST": 1, "DecideST": 1, "ExecuteST": 1}
