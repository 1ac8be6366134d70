"""service.start_run in-process on a real ledger: new run, replay, drift, bad input."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from sisu_kodo.api import service
from sisu_kodo.api.gateway import Enqueue
from sisu_kodo.contracts.runs import RunStatus, Workload
from sisu_kodo.errors import (
    InvalidRequestError,
    NotFoundError,
    QueuePolicyViolationError,
    RunIdentityConflictError,
)
from sisu_kodo.workflows.names import PLAN_WORKFLOW, plan_workflow_id
from tests.fixtures.ledger import APP_VERSION, new_intent, start_body, unit_of_work
from tests.fixtures.runs import scalar

pytestmark = pytest.mark.postgres


def _writes(engine: sa.Engine, intent_id: str) -> tuple[int, int]:
    """Runs and run events that exist for one intent."""
    run_count = scalar(engine, "SELECT COUNT(*) FROM app.runs WHERE intent_id = :i", i=intent_id)
    event_count = scalar(
        engine,
        "SELECT COUNT(*) FROM app.run_events e JOIN app.runs r ON r.id = e.run_id"
        " WHERE r.intent_id = :i",
        i=intent_id,
    )
    return int(run_count), int(event_count)


def test_a_new_start_writes_a_queued_run_and_enqueues_its_plan(ledger: sa.Engine) -> None:
    intent_id = new_intent(ledger)
    with unit_of_work(ledger) as unit:
        started = service.start_run(
            unit, intent_id=intent_id, body=start_body(), app_version=APP_VERSION
        )
    run_id = service.run_id_for(intent_id)
    assert (started.runId, started.workflowId, started.intentId) == (run_id, run_id, intent_id)
    assert started.status is RunStatus.QUEUED and not started.replayed
    assert unit.pending == [
        Enqueue(PLAN_WORKFLOW, plan_workflow_id(run_id), "tenant-svc", (run_id,))
    ]
    assert _writes(ledger, intent_id) == (1, 1)
    stored = scalar(ledger, "SELECT start_request FROM app.runs WHERE id = :r", r=run_id)
    assert stored == {
        "recipeName": "sandbox-default",
        "queueName": "intentQ",
        "queuePartitionKey": "tenant-svc",
        "workload": {"concurrency": 2, "steps": 3, "sandboxMinutes": None},
        "traceId": None,
    }


@pytest.mark.parametrize(("atomic", "heals"), [(True, 0), (False, 1)])
def test_an_identical_start_replays_and_heals_only_a_separate_system_db(
    ledger: sa.Engine, atomic: bool, heals: int
) -> None:
    intent_id = new_intent(ledger)
    with unit_of_work(ledger) as unit:
        first = service.start_run(
            unit, intent_id=intent_id, body=start_body(), app_version=APP_VERSION
        )
    with unit_of_work(ledger, atomic=atomic) as unit:
        again = service.start_run(
            unit, intent_id=intent_id, body=start_body(), app_version=APP_VERSION
        )
    assert again.replayed and (again.runId, again.workflowId) == (first.runId, first.workflowId)
    assert again.status is RunStatus.QUEUED
    # An atomic enqueue committed with the run; a separate one may have been lost.
    assert len(unit.pending) == heals
    assert _writes(ledger, intent_id) == (1, 1)


def test_a_divergent_start_is_a_conflict_naming_each_field(ledger: sa.Engine) -> None:
    intent_id = new_intent(ledger)
    with unit_of_work(ledger) as unit:
        service.start_run(unit, intent_id=intent_id, body=start_body(), app_version=APP_VERSION)
    divergent = start_body(workload=Workload(concurrency=5, steps=3), traceId="t-1")
    with pytest.raises(RunIdentityConflictError) as raised, unit_of_work(ledger) as unit:
        service.start_run(unit, intent_id=intent_id, body=divergent, app_version=APP_VERSION)
    assert raised.value.code == "run_identity_conflict"
    assert raised.value.details["runId"] == service.run_id_for(intent_id)
    assert raised.value.details["fields"] == ["traceId", "workload.concurrency"]
    assert {"field": "workload.concurrency", "existing": 2, "incoming": 5} in (
        raised.value.details["drift"]
    )
    assert unit.pending == []
    assert _writes(ledger, intent_id) == (1, 1)


def test_an_unknown_intent_is_not_found(ledger: sa.Engine) -> None:
    with pytest.raises(NotFoundError) as raised, unit_of_work(ledger) as unit:
        service.start_run(unit, intent_id="it_missing", body=start_body(), app_version=APP_VERSION)
    assert raised.value.details == {"intentId": "it_missing"}
    assert _writes(ledger, "it_missing") == (0, 0)


def test_an_unknown_recipe_is_a_validation_error(ledger: sa.Engine) -> None:
    intent_id = new_intent(ledger)
    with pytest.raises(InvalidRequestError) as raised, unit_of_work(ledger) as unit:
        service.start_run(
            unit,
            intent_id=intent_id,
            body=start_body(recipeName="no-such-recipe"),
            app_version=APP_VERSION,
        )
    assert type(raised.value) is InvalidRequestError and raised.value.code == "validation_error"
    assert raised.value.details == [{"path": "recipeName", "message": "no such recipe"}]
    assert _writes(ledger, intent_id) == (0, 0)


# The seeded recipe sandbox-default caps concurrency at 64, steps at 10,000, minutes at 60.
VIOLATIONS: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    ("parent-on-sbxQ", {"queueName": "sbxQ"}, {"field": "queueName", "value": "sbxQ"}),
    ("unknown-queue", {"queueName": "otherQ"}, {"field": "queueName", "value": "otherQ"}),
    ("no-partition", {"queuePartitionKey": None}, {"field": "queuePartitionKey", "value": None}),
    ("blank-partition", {"queuePartitionKey": "  "}, {"field": "queuePartitionKey"}),
    (
        "concurrency-cap",
        {"workload": Workload(concurrency=65, steps=1)},
        {"field": "workload.concurrency", "value": 65, "cap": 64},
    ),
    (
        "steps-cap",
        {"workload": Workload(concurrency=1, steps=10_001)},
        {"field": "workload.steps", "value": 10_001, "cap": 10_000},
    ),
    (
        "minutes-cap",
        {"workload": Workload(concurrency=1, steps=1, sandboxMinutes=61)},
        {"field": "workload.sandboxMinutes", "value": 61, "cap": 60},
    ),
]


@pytest.mark.parametrize(
    ("fields", "details"), [v[1:] for v in VIOLATIONS], ids=[v[0] for v in VIOLATIONS]
)
def test_policy_violations_write_nothing(
    ledger: sa.Engine, fields: dict[str, Any], details: dict[str, Any]
) -> None:
    intent_id = new_intent(ledger)
    with pytest.raises(QueuePolicyViolationError) as raised, unit_of_work(ledger) as unit:
        service.start_run(
            unit, intent_id=intent_id, body=start_body(**fields), app_version=APP_VERSION
        )
    error = raised.value
    assert error.code == "queue_policy_violation" and error.http_status == 400
    assert details.items() <= error.details.items()
    assert unit.pending == []
    assert _writes(ledger, intent_id) == (0, 0)
