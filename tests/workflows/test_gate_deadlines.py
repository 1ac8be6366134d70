"""Approval deadlines in one process: a real DBOS worker and the workers' gate sweep on a
fresh database. A gate nobody answers closes as a rejection after its warning; an
extension moves it; an answered gate's clock stops."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from sisu_kodo.api import service
from sisu_kodo.contracts.runs import ExtendApproval, RunStatus
from sisu_kodo.errors import IllegalStateError
from sisu_kodo.gates import GateSweep
from sisu_kodo.workflows.names import execute_workflow_id
from tests.fixtures.in_process import InProcessWorker
from tests.fixtures.postgres import TestDatabases
from tests.fixtures.processes import wait_for
from tests.fixtures.runs import scalar

WARN_SHARE = 0.5


@pytest.fixture(scope="module")
def worker(databases: TestDatabases) -> Iterator[InProcessWorker]:
    started = InProcessWorker.start(
        databases.create(),
        mock_latency_ms=5,
        queue_poll_seconds=0.05,
        approval_warn_share=WARN_SHARE,
    )
    sweep = GateSweep(started.engine, period=0.2)
    sweep.start()
    yield started
    sweep.stop()
    started.stop()


def start_with_ttl(worker: InProcessWorker, ttl: int, *, steps: int = 2) -> str:
    return worker.start_run(
        "deadline",
        steps=steps,
        concurrency=2,
        partition="tenant-deadline",
        constraints={"approvalTtlSeconds": ttl},
    )


def event_types(engine: sa.Engine, run_id: str) -> list[str]:
    with engine.connect() as conn:
        return list(
            conn.execute(
                sa.text("SELECT type FROM app.run_events WHERE run_id = :r ORDER BY seq"),
                {"r": run_id},
            ).scalars()
        )


def test_an_unanswered_gate_expires_as_a_rejection_after_its_warning(
    worker: InProcessWorker,
) -> None:
    run_id = start_with_ttl(worker, 3)
    worker.wait_status(run_id, RunStatus.WAITING_INPUT)
    assert worker.view(run_id).gate is not None
    worker.wait_status(run_id, RunStatus.FAILED, timeout=30)
    types = event_types(worker.engine, run_id)
    assert types.index("gate.opened") < types.index("gate.expiring") < types.index("plan.rejected")
    assert types.count("gate.expiring") == 1 and "plan.approved" not in types
    view = worker.view(run_id)
    assert view.error is not None and "approval_expired" in view.error
    assert view.gate is not None and view.gate.closedAs == "expired"
    assert (
        scalar(worker.engine, "SELECT decision FROM app.plan_approvals WHERE run_id = :r", r=run_id)
        == "rejected"
    )
    # nothing executed: no attempt, no execute workflow, no task workflow
    assert (
        scalar(worker.engine, "SELECT COUNT(*) FROM app.sbx_runs WHERE run_id = :r", r=run_id) == 0
    )
    assert (
        scalar(
            worker.engine,
            "SELECT COUNT(*) FROM dbos.workflow_status WHERE workflow_uuid = :w",
            w=execute_workflow_id(run_id),
        )
        == 0
    )
    # a rejected run is not retried
    with pytest.raises(IllegalStateError, match="rejected"):
        worker.retry(run_id)


def test_an_extension_moves_the_deadline_and_rearms_the_warning(worker: InProcessWorker) -> None:
    run_id = start_with_ttl(worker, 4)
    worker.wait_status(run_id, RunStatus.WAITING_INPUT)
    wait_for(lambda: "gate.expiring" in event_types(worker.engine, run_id), what="the warning")
    before = worker.view(run_id).gate
    assert before is not None
    with worker.engine.begin() as conn:
        extended = service.extend_approval(
            conn,
            run_id=run_id,
            body=ExtendApproval(seconds=3, reason="owner is on a call"),
            warn_share=WARN_SHARE,
        )
    after = worker.view(run_id).gate
    assert after is not None and after.expiresAt == extended.expiresAt
    assert after.expiresAt > before.expiresAt and after.warnedAt is None
    worker.wait_status(run_id, RunStatus.FAILED, timeout=30)
    types = event_types(worker.engine, run_id)
    assert types.count("gate.expiring") == 2
    assert types.index("gate.extended") < types.index("plan.rejected")


def test_an_answered_gate_stops_its_clock(worker: InProcessWorker) -> None:
    run_id = start_with_ttl(worker, 3)
    worker.wait_status(run_id, RunStatus.WAITING_INPUT)
    worker.approve(run_id)
    worker.wait_status(run_id, RunStatus.SUCCEEDED, timeout=30)
    gate = worker.view(run_id).gate
    assert gate is not None and gate.closedAs == "answered"
    assert "plan.rejected" not in event_types(worker.engine, run_id)
