"""POST /runs/{id}/events: the run's status is checked before the body (the manual's triage
matrix), and while the gate is open the body is a discriminated union of three types."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from sisu_kodo.contracts.runs import NextAction, RunStatus
from sisu_kodo.db.bootstrap import prepare_databases
from sisu_kodo.db.engine import create_engine
from tests.fixtures.auth import api_client
from tests.fixtures.ledger import move, started_run
from tests.fixtures.postgres import TestDatabases

pytestmark = pytest.mark.postgres

BODIES: list[Any] = [
    {"type": "approve-plan", "payload": {"approvedBy": "ops"}},
    {"type": "reject-plan", "payload": {"rejectedBy": "ops"}},
    {"type": "comment", "payload": {"author": "ops", "text": "looks fine"}},
    {"type": "dance", "payload": {}},
    {"type": "approve-plan", "payload": {}},
    {},
    [],
    "approve",
    None,
]
PATHS: dict[RunStatus, tuple[RunStatus, ...]] = {
    RunStatus.QUEUED: (),
    RunStatus.RUNNING: (RunStatus.RUNNING,),
    RunStatus.SUCCEEDED: (RunStatus.RUNNING, RunStatus.SUCCEEDED),
    RunStatus.FAILED: (RunStatus.RUNNING, RunStatus.FAILED),
    RunStatus.RETRIES_EXCEEDED: (RunStatus.RUNNING, RunStatus.RETRIES_EXCEEDED),
    RunStatus.CANCELED: (RunStatus.CANCELED,),
}


@pytest.fixture(scope="module")
def world(databases: TestDatabases) -> Iterator[tuple[TestClient, sa.Engine]]:
    url = databases.create()
    engine = create_engine(url, pool_size=2)
    prepare_databases(engine, url)
    with api_client(url, SISU_AUTH="off") as client:
        yield client, engine
    engine.dispose()


def _run_in(engine: sa.Engine, status: RunStatus) -> str:
    run_id = started_run(engine)
    if status is RunStatus.WAITING_INPUT:
        move(
            engine,
            run_id,
            RunStatus.RUNNING,
            RunStatus.WAITING_INPUT,
            next_action=NextAction.APPROVE_PLAN,
        )
    else:
        move(engine, run_id, *PATHS[status])
    return run_id


def _events(engine: sa.Engine, run_id: str) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(
                sa.text("SELECT COUNT(*) FROM app.run_events WHERE run_id = :r"), {"r": run_id}
            ).scalar_one()
        )


@pytest.mark.parametrize("status", list(PATHS))
def test_any_event_to_a_run_not_waiting_is_illegal_state(
    world: tuple[TestClient, sa.Engine], status: RunStatus
) -> None:
    client, engine = world
    run_id = _run_in(engine, status)
    before = _events(engine, run_id)
    for body in BODIES:
        response = client.post(f"/runs/{run_id}/events", json=body)
        assert response.status_code == 409, (status, body, response.text)
        assert response.json()["code"] == "illegal_state"
        assert response.json()["details"]["status"] == status.value
    assert _events(engine, run_id) == before


def test_unknown_event_type_lists_the_accepted_ones(world: tuple[TestClient, sa.Engine]) -> None:
    client, engine = world
    run_id = _run_in(engine, RunStatus.WAITING_INPUT)
    before = _events(engine, run_id)
    invalid: list[Any] = [{"type": "dance", "payload": {}}, {}, [], None, {"type": "comment"}]
    for body in invalid:
        response = client.post(f"/runs/{run_id}/events", json=body)
        assert response.status_code == 400, (body, response.text)
        answer = response.json()
        assert answer["code"] == "validation_error"
        for accepted in ("approve-plan", "reject-plan", "comment"):
            assert accepted in answer["message"]
    assert _events(engine, run_id) == before


def test_a_comment_goes_on_the_timeline_and_the_gate_stays_open(
    world: tuple[TestClient, sa.Engine],
) -> None:
    client, engine = world
    run_id = _run_in(engine, RunStatus.WAITING_INPUT)
    response = client.post(
        f"/runs/{run_id}/events",
        json={"type": "comment", "payload": {"author": "ops", "text": "checking the risks"}},
    )
    assert response.status_code == 202, response.text
    assert response.json()["status"] == "waiting_input"
    events = client.get(f"/runs/{run_id}/events").json()
    assert events[-1]["type"] == "comment"
    assert events[-1]["detail"]["text"] == "checking the risks"
    assert client.get(f"/runs/{run_id}").json()["status"] == "waiting_input"


def test_reject_event_closes_the_gate(world: tuple[TestClient, sa.Engine]) -> None:
    client, engine = world
    run_id = _run_in(engine, RunStatus.WAITING_INPUT)
    response = client.post(
        f"/runs/{run_id}/events",
        json={"type": "reject-plan", "payload": {"rejectedBy": "ops", "reason": "no"}},
    )
    assert response.status_code == 202, response.text
    assert client.get(f"/runs/{run_id}").json()["status"] == "failed"


def test_the_openapi_body_is_the_union(world: tuple[TestClient, sa.Engine]) -> None:
    client, _ = world
    operation = client.get("/openapi.json").json()["paths"]["/runs/{run_id}/events"]["post"]
    schema = operation["requestBody"]["content"]["application/json"]["schema"]
    tags = {option["properties"]["type"]["const"] for option in schema["oneOf"]}
    assert tags == {"approve-plan", "reject-plan", "comment"}
