"""GET /runs/{id}/events: JSON history, and a live SSE stream that ends with the run."""

from __future__ import annotations

import json

import httpx
import pytest

from sisu_kodo.client import SisuClient
from sisu_kodo.contracts.runs import RunStatus
from tests.fixtures.processes import Stack
from tests.fixtures.runs import run_to_gate

pytestmark = pytest.mark.integration


def test_event_stream_follows_the_run_live(client: SisuClient, stack: Stack) -> None:
    run = run_to_gate(client, goal="slow stream", steps=2, constraints={"mockLatencyMs": 300})
    received: list[dict[str, object]] = []
    with httpx.stream(
        "GET",
        f"{stack.base_url}/runs/{run.runId}/events",
        headers={"Accept": "text/event-stream"},
        timeout=60,
    ) as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        approved = False
        for line in stream.iter_lines():
            if not line.startswith("data:"):
                continue
            received.append(json.loads(line.removeprefix("data:").strip()))
            if received[-1]["type"] == "gate.opened" and not approved:
                client.approve_plan(run.runId, "ops-lead")  # approve while we watch
                approved = True
    types = [event["type"] for event in received]
    assert types[0] == "run.queued"
    assert "plan.approved" in types and types[-1] == "run.succeeded"
    assert [event["seq"] for event in received] == list(range(1, len(received) + 1))
    assert received[-1]["status"] == RunStatus.SUCCEEDED.value
    history = client.events(run.runId)
    assert [e.type for e in history] == types


def test_stream_resumes_after_last_event_id(client: SisuClient, stack: Stack) -> None:
    run = run_to_gate(client, steps=1)
    client.approve_plan(run.runId, "ops-lead")
    from tests.fixtures.runs import wait_status

    wait_status(client, run.runId, RunStatus.SUCCEEDED)
    with httpx.stream(
        "GET",
        f"{stack.base_url}/runs/{run.runId}/events",
        headers={"Accept": "text/event-stream", "Last-Event-ID": "5"},
        timeout=30,
    ) as stream:
        seqs = [
            json.loads(line.removeprefix("data:"))["seq"]
            for line in stream.iter_lines()
            if line.startswith("data:")
        ]
    assert seqs and seqs[0] == 6
