"""Every 4xx path answers `{code, message, details?}` with a stable code and writes nothing."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from sisu_kodo.client import SisuClient
from sisu_kodo.contracts.intents import IntentCreate
from sisu_kodo.contracts.runs import RunStatus
from tests.fixtures.processes import Stack
from tests.fixtures.runs import ledger_counts, run_to_end, run_to_gate, start_run, wait_status

pytestmark = pytest.mark.integration

GOOD_RUN = {
    "recipeName": "sandbox-default",
    "queuePartitionKey": "tenant-err",
    "workload": {"concurrency": 2, "steps": 2},
}


@pytest.fixture(scope="module")
def fixtures(client: SisuClient) -> dict[str, str]:
    """Runs in each interesting state, made once for the module."""
    intent_id = client.create_intent(IntentCreate(goal="an intent with no run"))
    waiting = run_to_gate(client, partition="tenant-err")
    done = run_to_end(client, partition="tenant-err")
    assert done.status is RunStatus.SUCCEEDED
    return {"intent": intent_id, "waiting": waiting.runId, "done": done.runId}


def _post(base: str, path: str, body: Any = None, raw: bytes | None = None) -> httpx.Response:
    content = raw if raw is not None else httpx.Request("POST", "/", json=body).content
    return httpx.post(
        base + path, content=content, headers={"content-type": "application/x-www-form-urlencoded"}
    )


CASES: list[
    tuple[str, Callable[[dict[str, str]], tuple[str, str, Any, bytes | None]], int, str]
] = [
    (
        "malformed intent json",
        lambda f: ("POST", "/intents", None, b'{"goal": '),
        400,
        "validation_error",
    ),
    (
        "empty goal",
        lambda f: ("POST", "/intents", {"goal": "", "inputs": {}, "constraints": {}}, None),
        400,
        "validation_error",
    ),
    ("blank goal", lambda f: ("POST", "/intents", {"goal": "   "}, None), 400, "validation_error"),
    (
        "inputs not an object",
        lambda f: ("POST", "/intents", {"goal": "g", "inputs": []}, None),
        400,
        "validation_error",
    ),
    (
        "unknown intent field",
        lambda f: ("POST", "/intents", {"goal": "g", "extra": 1}, None),
        400,
        "validation_error",
    ),
    (
        "run of unknown intent",
        lambda f: ("POST", "/intents/it_nope/run", GOOD_RUN, None),
        404,
        "not_found",
    ),
    (
        "run body not json",
        lambda f: ("POST", f"/intents/{f['intent']}/run", None, b"recipeName=x"),
        400,
        "validation_error",
    ),
    (
        "run concurrency zero",
        lambda f: (
            "POST",
            f"/intents/{f['intent']}/run",
            {**GOOD_RUN, "workload": {"concurrency": 0, "steps": 1}},
            None,
        ),
        400,
        "validation_error",
    ),
    (
        "unknown recipe",
        lambda f: ("POST", f"/intents/{f['intent']}/run", {**GOOD_RUN, "recipeName": "nope"}, None),
        400,
        "validation_error",
    ),
    (
        "parent on sbxQ",
        lambda f: ("POST", f"/intents/{f['intent']}/run", {**GOOD_RUN, "queueName": "sbxQ"}, None),
        400,
        "queue_policy_violation",
    ),
    (
        "blank partition key",
        lambda f: (
            "POST",
            f"/intents/{f['intent']}/run",
            {**GOOD_RUN, "queuePartitionKey": "  "},
            None,
        ),
        400,
        "queue_policy_violation",
    ),
    (
        "missing partition key",
        lambda f: (
            "POST",
            f"/intents/{f['intent']}/run",
            {"workload": {"concurrency": 1, "steps": 1}},
            None,
        ),
        400,
        "queue_policy_violation",
    ),
    (
        "steps over recipe cap",
        lambda f: (
            "POST",
            f"/intents/{f['intent']}/run",
            {
                **GOOD_RUN,
                "recipeName": "compile-default",
                "workload": {"concurrency": 1, "steps": 33},
            },
            None,
        ),
        400,
        "queue_policy_violation",
    ),
    (
        "concurrency over recipe cap",
        lambda f: (
            "POST",
            f"/intents/{f['intent']}/run",
            {**GOOD_RUN, "workload": {"concurrency": 65, "steps": 1}},
            None,
        ),
        400,
        "queue_policy_violation",
    ),
    ("unknown run", lambda f: ("GET", "/runs/run_nope", None, None), 404, "not_found"),
    (
        "events of unknown run",
        lambda f: ("GET", "/runs/run_nope/events", None, None),
        404,
        "not_found",
    ),
    (
        "approve unknown run",
        lambda f: ("POST", "/runs/run_nope/approve-plan", {"approvedBy": "x"}, None),
        404,
        "not_found",
    ),
    (
        "approve without approver",
        lambda f: ("POST", f"/runs/{f['waiting']}/approve-plan", {}, None),
        400,
        "validation_error",
    ),
    (
        "approve a finished run",
        lambda f: ("POST", f"/runs/{f['done']}/approve-plan", {"approvedBy": "x"}, None),
        409,
        "illegal_state",
    ),
    (
        "event to a finished run",
        lambda f: (
            "POST",
            f"/runs/{f['done']}/events",
            {"type": "approve-plan", "payload": {"approvedBy": "x"}},
            None,
        ),
        409,
        "illegal_state",
    ),
    (
        "unknown event type",
        lambda f: ("POST", f"/runs/{f['waiting']}/events", {"type": "dance", "payload": {}}, None),
        400,
        "validation_error",
    ),
    (
        "event payload invalid",
        lambda f: (
            "POST",
            f"/runs/{f['waiting']}/events",
            {"type": "approve-plan", "payload": {}},
            None,
        ),
        400,
        "validation_error",
    ),
    (
        "unknown artifact",
        lambda f: ("GET", "/artifacts/artifact%3A%2F%2Frun%2Fnope", None, None),
        404,
        "not_found",
    ),
    ("unknown route", lambda f: ("GET", "/nowhere", None, None), 404, "not_found"),
]


@pytest.mark.parametrize(
    ("name", "request_for", "status", "code"), CASES, ids=[c[0] for c in CASES]
)
def test_error_lattice_writes_nothing(
    name: str,
    request_for: Callable[[dict[str, str]], tuple[str, str, Any, bytes | None]],
    status: int,
    code: str,
    fixtures: dict[str, str],
    stack: Stack,
    db: sa.Engine,
) -> None:
    method, path, body, raw = request_for(fixtures)
    before = ledger_counts(db)
    if method == "POST":
        response = _post(stack.base_url, path, body, raw)
    else:
        response = httpx.get(stack.base_url + path)
    assert response.status_code == status, response.text
    payload = response.json()
    assert payload["code"] == code
    assert payload["message"]
    assert ledger_counts(db) == before


def test_validation_error_names_the_field(stack: Stack) -> None:
    response = _post(stack.base_url, "/intents", {"goal": "g", "inputs": {}, "constraints": 3})
    assert response.status_code == 400
    assert any(d["path"] == "constraints" for d in response.json()["details"])


def test_divergent_start_is_409_listing_fields(
    client: SisuClient, stack: Stack, db: sa.Engine
) -> None:
    run_id = start_run(client, partition="tenant-err", steps=2, concurrency=1)
    intent_id = wait_status(client, run_id, RunStatus.WAITING_INPUT).intentId
    before = ledger_counts(db)
    response = _post(
        stack.base_url,
        f"/intents/{intent_id}/run",
        {**GOOD_RUN, "workload": {"concurrency": 2, "steps": 3}},
    )
    assert response.status_code == 409
    body = response.json()
    assert body["code"] == "run_identity_conflict"
    assert set(body["details"]["fields"]) == {"workload.concurrency", "workload.steps"}
    assert ledger_counts(db) == before
