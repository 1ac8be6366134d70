"""Gates and webhooks across SIGKILL of the worker, with real processes: a gate with a
5 s deadline expires (warning first, both notified, nothing executed) although the worker
was killed during the wait and during a delivery; the killed delivery arrives again under
its one webhook-id. The subscription is made with `sisu webhooks add`."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter

import pytest
import sqlalchemy as sa

from sisu_kodo.client import SisuClient
from sisu_kodo.contracts.runs import RunStatus
from sisu_kodo.db.engine import create_engine
from tests.fixtures.processes import Stack, wait_for
from tests.fixtures.runs import scalar, start_run, wait_status
from tests.fixtures.webhooks import Receiver

pytestmark = pytest.mark.integration

TENANT = "tenant-crash-hooks"
HOOK_ENV = {
    "SISU_WEBHOOK_ALLOW_LOOPBACK": "1",
    "SISU_WEBHOOK_DISPATCH_SECONDS": "0.2",
    "SISU_WEBHOOK_RETRY_INITIAL_SECONDS": "0.5",
    "SISU_WEBHOOK_RETRY_MAX_INTERVAL_SECONDS": "1",
    "SISU_GATE_SWEEP_SECONDS": "0.3",
}


def sisu(stack: Stack, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "sisu_kodo.cli.main", *args],
        env=stack.env(COLUMNS="400"),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout


def test_deadline_and_delivery_survive_sigkill(make_stack: object) -> None:
    assert callable(make_stack)
    stack: Stack = make_stack(**HOOK_ENV)
    worker = stack.start_worker("gate-worker")
    stack.start_api()
    # The first delivery is held by the receiver: the window in which the worker dies.
    receiver = Receiver(hold=2.0).up()
    engine = create_engine(stack.database_url, pool_size=1)
    try:
        secret = sisu(
            stack, "webhooks", "add", receiver.url, "--tenant", TENANT, "--base", stack.base_url
        ).strip()
        receiver.secrets.append(secret)
        assert TENANT in sisu(stack, "webhooks", "ls", "--base", stack.base_url)
        with SisuClient(stack.base_url) as client:
            run_id = start_run(
                client, partition=TENANT, steps=2, constraints={"approvalTtlSeconds": 5}
            )
            wait_status(client, run_id, RunStatus.WAITING_INPUT)
            wait_for(lambda: receiver.arrivals >= 1, what="the first delivery in flight")
            worker.kill()  # mid-delivery, and while the gate waits
            receiver.hold = 0.0
            stack.start_worker("gate-worker")  # same executor id: DBOS recovers its work
            final = wait_status(client, run_id, RunStatus.FAILED, timeout=60)
            assert final.error is not None and "approval_expired" in final.error
            wait_for(
                lambda: {"gate.expiring", "run.rejected"} <= set(receiver.types(run_id)),
                timeout=60,
                what="the warning and the rejection webhooks",
            )
            types = [e.type for e in client.events(run_id)]
            assert types.index("gate.expiring") < types.index("plan.rejected")
            deliveries = sisu(stack, "webhooks", "deliveries", run_id, "--base", stack.base_url)
            assert "run.waiting_input" in deliveries
        assert_notified_once_per_id(receiver, run_id)
        assert_nothing_executed(engine, run_id)
    finally:
        receiver.down()
        engine.dispose()


def assert_notified_once_per_id(receiver: Receiver, run_id: str) -> None:
    received = receiver.of_run(run_id)
    ids_per_type: dict[str, set[str]] = {}
    for item in received:
        ids_per_type.setdefault(item.type, set()).add(item.webhook_id)
    assert set(ids_per_type) == {"run.waiting_input", "gate.expiring", "run.rejected"}
    # one webhook-id per event; the killed delivery may repeat, under that same id only
    assert all(len(ids) == 1 for ids in ids_per_type.values()), ids_per_type
    repeats = Counter(item.webhook_id for item in received)
    # the delivery in flight at the kill was never recorded, so it was sent again
    assert repeats[next(iter(ids_per_type["run.waiting_input"]))] >= 2
    assert not receiver.refused


def assert_nothing_executed(engine: sa.Engine, run_id: str) -> None:
    assert scalar(engine, "SELECT COUNT(*) FROM app.sbx_runs WHERE run_id = :r", r=run_id) == 0
    assert (
        scalar(
            engine,
            "SELECT COUNT(*) FROM dbos.workflow_status WHERE queue_name = 'sbxQ'"
            " AND inputs LIKE '%' || :r || '%'",
            r=run_id,
        )
        == 0
    )
    assert (
        scalar(engine, "SELECT decision FROM app.plan_approvals WHERE run_id = :r", r=run_id)
        == "rejected"
    )


def test_parked_runs_open_or_expire_on_the_next_app_version(make_stack: object) -> None:
    """Runs parked at the gate under v1; every v1 process stops; under v2 one gate is
    approved (and executes) and the other expires."""
    assert callable(make_stack)
    stack: Stack = make_stack(SISU_GATE_SWEEP_SECONDS="0.3")
    worker = stack.start_worker("v1-worker", DBOS__APPVERSION="v1")
    api = stack.start_api("api-v1", DBOS__APPVERSION="v1")
    with SisuClient(stack.base_url) as client:
        approved = start_run(client, partition=TENANT, steps=2)
        expiring = start_run(
            client, partition=TENANT, steps=2, constraints={"approvalTtlSeconds": 8}
        )
        for run_id in (approved, expiring):
            wait_status(client, run_id, RunStatus.WAITING_INPUT)
    worker.kill()
    api.stop()
    stack.start_worker("v2-worker", DBOS__APPVERSION="v2")
    stack.start_api("api-v2", DBOS__APPVERSION="v2")
    with SisuClient(stack.base_url) as client:
        client.approve_plan(approved, "ops-lead")
        done = wait_status(client, approved, RunStatus.SUCCEEDED, timeout=60)
        assert done.appVersion == "v1"  # started under v1, executed by the v2 worker
        ended = wait_status(client, expiring, RunStatus.FAILED, timeout=60)
        assert ended.error is not None and "approval_expired" in ended.error
