"""Signed webhooks in one process: a real DBOS worker with its webhook dispatcher and the
gate sweep, and a real receiver on loopback verifying every signature with the
`standardwebhooks` package. Every listed event arrives, once per webhook-id, also after
the receiver was down."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import pytest

from sisu_kodo.api import service
from sisu_kodo.auth import ANONYMOUS
from sisu_kodo.contracts.runs import RejectPlan, RunStatus
from sisu_kodo.contracts.webhooks import WebhookCreate, WebhookEvent
from sisu_kodo.db import runs
from sisu_kodo.gates import GateSweep
from sisu_kodo.notify import WebhookDispatcher
from sisu_kodo.notify.subscriptions import deliveries, subscribe
from tests.fixtures.in_process import TERMINAL, InProcessWorker
from tests.fixtures.postgres import TestDatabases
from tests.fixtures.processes import wait_for
from tests.fixtures.runs import scalar
from tests.fixtures.webhooks import Receiver

TENANT = "tenant-hooks"


@pytest.fixture(scope="module")
def worker(databases: TestDatabases) -> Iterator[InProcessWorker]:
    started = InProcessWorker.start(
        databases.create(),
        mock_latency_ms=5,
        queue_poll_seconds=0.05,
        task_retry_interval_seconds=0.01,
        approval_warn_share=0.5,
        allow_loopback=True,
        retry_initial_seconds=0.3,
        retry_max_interval_seconds=1.0,
        console_url="http://127.0.0.1:9/console/",
    )
    dispatcher = WebhookDispatcher(
        started.engine,
        started.client,
        started.settings.with_overrides(dispatch_seconds=0.1),
        atomic=True,
    )
    sweep = GateSweep(started.engine, period=0.2)
    dispatcher.start()
    sweep.start()
    yield started
    sweep.stop()
    dispatcher.stop()
    started.stop()


@pytest.fixture(scope="module")
def receiver(worker: InProcessWorker) -> Iterator[Receiver]:
    hooks = Receiver().up()
    with worker.engine.begin() as conn:
        created = subscribe(
            conn,
            WebhookCreate(url=hooks.url, events=list(WebhookEvent), tenant=TENANT),
            ANONYMOUS,
            worker.settings.notify,
        )
    hooks.secrets.append(created.secret)
    yield hooks
    hooks.down()


def start(worker: InProcessWorker, goal: str, **constraints: object) -> str:
    return worker.start_run(
        goal, steps=2, concurrency=2, partition=TENANT, constraints=dict(constraints)
    )


def await_types(receiver: Receiver, run_id: str, *wanted: str) -> list[str]:
    def arrived() -> list[str] | None:
        types = receiver.types(run_id)
        return types if set(wanted) <= set(types) else None

    return wait_for(arrived, timeout=30, what=f"webhooks {wanted} of {run_id}")


def await_delivered(worker: InProcessWorker, run_id: str, count: int) -> None:
    """The receiver answers before the sender records the attempt: wait for the ledger."""
    wait_for(
        lambda: (
            scalar(
                worker.engine,
                "SELECT COUNT(*) FROM app.webhook_messages"
                " WHERE run_id = :r AND status = 'delivered'",
                r=run_id,
            )
            == count
        ),
        what=f"{count} delivered message(s) of {run_id}",
    )


def assert_once_per_id(worker: InProcessWorker, receiver: Receiver, run_id: str) -> None:
    """Each event reached the receiver under one webhook-id; an id repeats only if a
    delivery was re-sent (never here: every first attempt that reached it was answered)."""
    received = receiver.of_run(run_id)
    ids = Counter(item.webhook_id for item in received)
    assert all(count == 1 for count in ids.values()), ids
    assert len({(item.data["seq"]) for item in received}) == len(ids)
    assert not receiver.refused


def test_a_run_notifies_waiting_approved_and_succeeded(
    worker: InProcessWorker, receiver: Receiver
) -> None:
    run_id = start(worker, "notified run")
    worker.wait_status(run_id, RunStatus.WAITING_INPUT)
    types = await_types(receiver, run_id, "run.waiting_input")
    waiting = next(item for item in receiver.of_run(run_id) if item.type == "run.waiting_input")
    assert waiting.data["runUrl"] == f"http://127.0.0.1:9/console/runs/{run_id}"
    worker.approve(run_id)
    worker.wait_status(run_id, *TERMINAL)
    types = await_types(receiver, run_id, "run.approved", "run.succeeded")
    assert types == ["run.waiting_input", "run.approved", "run.succeeded"]
    assert_once_per_id(worker, receiver, run_id)
    await_delivered(worker, run_id, 3)
    with worker.engine.connect() as conn:
        attempts = deliveries(conn, run_id=run_id)
    assert [a.statusCode for a in attempts] == [204, 204, 204]
    assert all(a.messageStatus == "delivered" and a.latencyMs is not None for a in attempts)


def test_rejection_retries_exceeded_cancel_and_failure_are_notified(
    worker: InProcessWorker, receiver: Receiver
) -> None:
    rejected = start(worker, "to reject")
    worker.wait_status(rejected, RunStatus.WAITING_INPUT)
    with worker.engine.begin() as conn:
        service.reject_plan(conn, run_id=rejected, body=RejectPlan(rejectedBy="ops"))
    await_types(receiver, rejected, "run.rejected")

    failing = start(worker, "fail me")
    worker.wait_status(failing, RunStatus.WAITING_INPUT)
    worker.approve(failing)
    worker.wait_status(failing, RunStatus.RETRIES_EXCEEDED)
    await_types(receiver, failing, "run.retries_exceeded")

    canceled = start(worker, "to cancel")
    worker.wait_status(canceled, RunStatus.WAITING_INPUT)
    with worker.gateway.unit_of_work(worker.engine) as unit:
        service.cancel_run(unit, run_id=canceled)
    await_types(receiver, canceled, "run.canceled")

    # run.failed as the watchdog (or a failing phase) records it
    broken = start(worker, "to fail")
    worker.wait_status(broken, RunStatus.WAITING_INPUT)
    with worker.engine.begin() as conn:
        runs.transition(
            conn, run_id=broken, status=RunStatus.FAILED, event="run.failed", error="test"
        )
    await_types(receiver, broken, "run.failed")
    for run_id in (rejected, failing, canceled, broken):
        assert_once_per_id(worker, receiver, run_id)


def test_an_expiring_gate_is_notified_before_its_rejection(
    worker: InProcessWorker, receiver: Receiver
) -> None:
    run_id = start(worker, "nobody answers", approvalTtlSeconds=3)
    types = await_types(receiver, run_id, "gate.expiring", "run.rejected")
    assert types == ["run.waiting_input", "gate.expiring", "run.rejected"]
    rejected = receiver.of_run(run_id)[-1]
    assert rejected.data["detail"]["reason"] == "approval_expired"
    assert (
        scalar(worker.engine, "SELECT COUNT(*) FROM app.sbx_runs WHERE run_id = :r", r=run_id) == 0
    )


def test_a_receiver_that_was_down_gets_every_event_once_when_back(
    worker: InProcessWorker, receiver: Receiver
) -> None:
    receiver.down()
    try:
        run_id = start(worker, "receiver is down")
        worker.wait_status(run_id, RunStatus.WAITING_INPUT)
        wait_for(
            lambda: (
                scalar(
                    worker.engine,
                    "SELECT COUNT(*) FROM app.webhook_deliveries"
                    " WHERE run_id = :r AND error IS NOT NULL",
                    r=run_id,
                )
                >= 3
            ),
            what="three failed attempts while the receiver is down",
        )
    finally:
        receiver.up()
    await_types(receiver, run_id, "run.waiting_input")
    assert_once_per_id(worker, receiver, run_id)
    await_delivered(worker, run_id, 1)
    with worker.engine.connect() as conn:
        attempts = deliveries(conn, run_id=run_id)
    assert [a.statusCode for a in attempts][-1] == 204
    assert all(a.statusCode is None and a.error for a in attempts[:-1])
    assert len({a.webhookId for a in attempts}) == 1  # every retry under the same id
    assert (
        scalar(
            worker.engine,
            "SELECT status FROM app.webhook_messages WHERE run_id = :r",
            r=run_id,
        )
        == "delivered"
    )
