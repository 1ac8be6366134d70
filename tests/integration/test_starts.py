"""Run identity: repeating the identical start returns the same run, exactly one workflow."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
import sqlalchemy as sa

from sisu_kodo.client import SisuClient
from sisu_kodo.contracts.intents import IntentCreate
from sisu_kodo.contracts.runs import RunStart, RunStatus, Workload
from tests.fixtures.runs import scalar, wait_status

pytestmark = pytest.mark.integration


def _start(partition: str = "tenant-idem") -> RunStart:
    return RunStart(
        recipeName="sandbox-default",
        queuePartitionKey=partition,
        workload=Workload(concurrency=2, steps=3),
    )


def test_identical_start_replays_the_same_run(client: SisuClient, db: sa.Engine) -> None:
    intent_id = client.create_intent(IntentCreate(goal="idempotent start"))
    first = client.start_run(intent_id, _start())
    second = client.start_run(intent_id, _start())
    assert not first.replayed and second.replayed
    assert (second.runId, second.workflowId) == (first.runId, first.workflowId)
    wait_status(client, first.runId, RunStatus.WAITING_INPUT)
    third = client.start_run(intent_id, _start())
    assert third.runId == first.runId and third.status is RunStatus.WAITING_INPUT
    assert scalar(db, "SELECT COUNT(*) FROM app.runs WHERE intent_id = :i", i=intent_id) == 1
    workflows = scalar(
        db,
        "SELECT COUNT(*) FROM dbos.workflow_status WHERE workflow_uuid LIKE :w",
        w=f"{first.runId}%",
    )
    assert workflows == 1


def test_concurrent_identical_starts_make_one_run(client: SisuClient, db: sa.Engine) -> None:
    intent_id = client.create_intent(IntentCreate(goal="racing starts"))
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda _: client.start_run(intent_id, _start()), range(8)))
    assert len({r.runId for r in results}) == 1
    assert sum(not r.replayed for r in results) == 1
    run_id = results[0].runId
    wait_status(client, run_id, RunStatus.WAITING_INPUT)
    assert scalar(db, "SELECT COUNT(*) FROM app.runs WHERE intent_id = :i", i=intent_id) == 1
    assert (
        scalar(
            db,
            "SELECT COUNT(*) FROM app.run_steps WHERE run_id = :r AND step_id = 'CompileST'",
            r=run_id,
        )
        == 1
    )
