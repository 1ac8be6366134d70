"""Two workers; one dies for good. The survivor takes over its workflows (the recovery
sweep) and finishes the run exactly once."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from sisu_kodo.cli.stack import free_port
from sisu_kodo.client import SisuClient
from sisu_kodo.contracts.runs import RunStatus
from sisu_kodo.db.engine import create_engine
from tests.fixtures.processes import Stack, wait_for
from tests.fixtures.runs import execute_tasks, rows, run_to_gate, scalar, wait_status

pytestmark = pytest.mark.integration


def test_survivor_takes_over_a_dead_workers_workflows(make_stack: Callable[..., Stack]) -> None:
    stack = make_stack()
    # worker-b starts alone, so the run's workflows are surely its own when it dies.
    doomed = stack.start_worker("worker-b", ADMIN_PORT=str(free_port()))
    stack.start_api()
    engine = create_engine(stack.database_url, pool_size=1)
    try:
        with SisuClient(stack.base_url) as client:
            gate = run_to_gate(
                client,
                goal="slow takeover",
                steps=12,
                concurrency=6,
                constraints={"mockLatencyMs": 800},
            )
            client.approve_plan(gate.runId, "ops-lead")
            owned_by_b = (
                "SELECT COUNT(*) FROM dbos.workflow_status WHERE status = 'PENDING'"
                " AND executor_id = 'test-worker-b'"
            )
            wait_for(
                lambda: scalar(engine, owned_by_b),
                timeout=30,
                what="worker-b to own running workflows",
            )
            # Kill first, then start the survivor: a survivor started first could take its
            # time booting while worker-b finishes the whole run, leaving nothing to take.
            doomed.kill()
            killed_at = time.monotonic()
            assert scalar(engine, owned_by_b), "worker-b died owning running workflows"
            stack.start_worker("worker-a")  # the survivor
            wait_for(
                lambda: scalar(engine, owned_by_b) == 0,
                timeout=30,
                what="worker-a to take over worker-b's workflows",
            )
            takeover_seconds = time.monotonic() - killed_at
            done = wait_status(client, gate.runId, RunStatus.SUCCEEDED, timeout=60)
        assert takeover_seconds < 30
        assert scalar(engine, "SELECT COUNT(*) FROM app.mock_receipts WHERE seen_count > 1") == 0
        assert (
            scalar(engine, "SELECT COUNT(*) FROM app.mock_receipts WHERE run_id = :r", r=gate.runId)
            == 12
        )
        assert (
            rows(engine, "SELECT task_key FROM app.sbx_runs GROUP BY 1 HAVING COUNT(*) > 1") == []
        )
        assert {t["status"] for t in execute_tasks(done)} == {"succeeded"}
        assert (
            scalar(engine, "SELECT COUNT(*) FROM app.workers WHERE executor_id = 'test-worker-b'")
            == 0
        )
        # The sweep let go of the dead worker's lease: it can come back under its own id.
        stack.start_worker("worker-b", ADMIN_PORT=str(free_port()))
    finally:
        engine.dispose()
