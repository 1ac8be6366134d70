"""Manual section 4, the triage matrix: each listed error appears, with its status and code,
under its stated condition (requests sent the way the manual's curl sends them)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable

import httpx
import pytest

from sisu_kodo.cli.stack import free_port
from sisu_kodo.client import SisuClient
from sisu_kodo.contracts.intents import IntentCreate
from sisu_kodo.contracts.runs import NextAction, RunStatus
from tests.fixtures.processes import Stack
from tests.fixtures.runs import execute_tasks, run_to_end, run_to_gate, start_run

pytestmark = pytest.mark.integration

FORM = {"content-type": "application/x-www-form-urlencoded"}  # what `curl -d` declares


def curl_post(url: str, body: object | None = None) -> httpx.Response:
    content = json.dumps(body) if body is not None else None
    return httpx.post(url, content=content, headers=FORM)


def test_400_queue_policy_violation_for_caps_and_sbxq(client: SisuClient, stack: Stack) -> None:
    intent = client.create_intent(IntentCreate(goal="triage"))
    over_caps = curl_post(
        f"{stack.base_url}/intents/{intent}/run",
        {
            "recipeName": "sandbox-default",
            "queuePartitionKey": "t",
            "workload": {"concurrency": 5, "steps": 10_001},
        },
    )
    on_sbxq = curl_post(
        f"{stack.base_url}/intents/{intent}/run",
        {
            "recipeName": "sandbox-default",
            "queuePartitionKey": "t",
            "queueName": "sbxQ",
            "workload": {"concurrency": 5, "steps": 10},
        },
    )
    for response in (over_caps, on_sbxq):
        assert response.status_code == 400
        assert response.json()["code"] == "queue_policy_violation"


def test_409_illegal_state_for_events_when_not_waiting(client: SisuClient, stack: Stack) -> None:
    run = run_to_end(client, steps=1)
    response = curl_post(
        f"{stack.base_url}/runs/{run.runId}/events",
        {"type": "approve-plan", "payload": {"approvedBy": "ops-lead"}},
    )
    assert response.status_code == 409 and response.json()["code"] == "illegal_state"


def test_409_retry_drift_for_retry_of_succeeded(client: SisuClient, stack: Stack) -> None:
    run = run_to_end(client, steps=1)
    response = curl_post(f"{stack.base_url}/runs/{run.runId}/retry")  # `curl -X POST .../retry`
    assert response.status_code == 409 and response.json()["code"] == "retry_drift"


def test_stuck_queued_is_explained_by_app_version(make_stack: Callable[..., Stack]) -> None:
    # A stack of its own: the v7 run stays queued for good, and the session's shared stack
    # must stay one that `sisu doctor` finds healthy (tests/integration/test_ops_cli.py).
    stack = make_stack()
    stack.start_worker()
    port = free_port()
    stack.start_api("api-v7", PORT=str(port), DBOS__APPVERSION="v7")
    with SisuClient(f"http://127.0.0.1:{port}") as v7:
        run = v7.get_run(start_run(v7, steps=1))
    assert run.status is RunStatus.QUEUED and run.nextAction is NextAction.START_WORKER
    assert run.hint and "DBOS__APPVERSION=v7" in run.hint
    doctor = subprocess.run(
        [sys.executable, "-m", "sisu_kodo.cli.main", "doctor"],
        env={**stack.env(DBOS__APPVERSION="v7"), "COLUMNS": "250"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert doctor.returncode == 1
    assert "no live worker runs it" in doctor.stdout and "run(s) of v7" in doctor.stdout
    assert "OpenCode daemon" in doctor.stdout  # the manual: check oc:daemon:health too


def test_cmd_nonzero_stderr_is_in_the_artifact_index(client: SisuClient) -> None:
    run = run_to_end(client, goal="triage: fail me", steps=2)
    assert run.status is RunStatus.RETRIES_EXCEEDED and run.nextAction is NextAction.REPAIR
    failed = next(t for t in execute_tasks(run) if t["errCode"] == "CMD_NONZERO")
    index_uri = next(uri for uri in failed["artifacts"] if uri.endswith("/index"))
    index = json.loads(client.artifact(index_uri))
    assert index["errCode"] == "CMD_NONZERO" and index["exitCode"] == 1
    stderr = next(item for item in index["items"] if item["kind"] == "stderr")
    assert b"exited with 1" in client.artifact(stderr["uri"])


def test_gate_waiting_run_rejects_retry_with_illegal_state(
    client: SisuClient, stack: Stack
) -> None:
    run = run_to_gate(client, steps=1)
    response = curl_post(f"{stack.base_url}/runs/{run.runId}/retry")
    assert response.status_code == 409 and response.json()["code"] == "illegal_state"
