"""Runs planned by the real OpenCode server through a real worker: live, record then
replay, and a worker killed after the model answered."""

from __future__ import annotations

import json
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from sisu_kodo.cli.stack import free_port
from sisu_kodo.client import SisuClient
from sisu_kodo.contracts.runs import RunStatus, RunView
from sisu_kodo.db.engine import create_engine
from tests.fixtures.processes import Stack, wait_for
from tests.fixtures.runs import rows, run_to_gate, start_run, wait_status
from tests.oc.conftest import OpenCodeServer
from tests.oc.stub_model import STUB_PLAN, StubModel

pytestmark = pytest.mark.integration


def compile_output(run: RunView) -> dict[str, Any]:
    step = next(s for s in run.steps if s.stepId == "CompileST")
    assert step.output is not None
    return step.output


def calls(database_url: str, run_id: str) -> list[sa.Row[Any]]:
    engine = create_engine(database_url, pool_size=1)
    try:
        return rows(
            engine,
            "SELECT id, mode, source, agent, prompt_version, plan, reply, tokens, error"
            " FROM app.opencode_calls WHERE run_id = :r ORDER BY id",
            r=run_id,
        )
    finally:
        engine.dispose()


def dead_url() -> str:
    """A loopback URL nothing listens on: proof that no OpenCode server is asked."""
    port = free_port()
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", port)) != 0
    return f"http://127.0.0.1:{port}"


def test_live_compile_through_a_real_worker(
    make_stack: Callable[..., Stack], opencode: OpenCodeServer, stub: StubModel
) -> None:
    stack = make_stack(**opencode.env(OC_STRICT_MODE="1"))
    stack.start_worker()
    stack.start_api()
    before = stub.structured
    with SisuClient(stack.base_url) as client:
        run = run_to_gate(client, goal="lint and test the repo", steps=3)
    output = compile_output(run)
    assert output["planSource"] == "live" and output["planner"] == "live"
    assert output["goal"] == STUB_PLAN["goal"] and output["taskCount"] == 2
    assert "stub/stub-planner" in output["planNote"]
    (call,) = calls(stack.database_url, run.runId)
    assert str(call.id) == output["opencodeCallId"]
    assert (call.mode, call.source, call.agent, call.error) == ("live", "live", "plan", None)
    assert call.plan == STUB_PLAN and call.reply == STUB_PLAN and call.tokens["total"] == 30
    assert stub.structured == before + 1
    health = httpx.get(f"{stack.admin_url}/healthz").json()
    assert health["opencode"]["reachable"] is True


def test_record_then_replay_gives_the_same_plan_without_a_server(
    make_stack: Callable[..., Stack], opencode: OpenCodeServer, tmp_path: Path
) -> None:
    fixtures = tmp_path / "fixtures-oc"
    goal = "record me, then replay me"
    recorder = make_stack(**opencode.env(OC_MODE="record", OC_FIXTURES_DIR=str(fixtures)))
    recorder.start_worker()
    recorder.start_api()
    with SisuClient(recorder.base_url) as client:
        recorded = run_to_gate(client, goal=goal, steps=2)
    recorder.stop()
    (fixture,) = fixtures.glob("*.json")
    document = json.loads(fixture.read_text())
    assert fixture.stem == document["key"] and document["reply"] == STUB_PLAN
    assert document["request"]["agent"] == "plan" and goal in document["request"]["prompt"]

    replayer = make_stack(OC_MODE="replay", OC_FIXTURES_DIR=str(fixtures), OC_BASE_URL=dead_url())
    replayer.start_worker()
    replayer.start_api()
    with SisuClient(replayer.base_url) as client:
        replayed = run_to_gate(client, goal=goal, steps=2)
        unknown = run_to_gate(client, goal="never recorded", steps=2)
    first, second = compile_output(recorded), compile_output(replayed)
    assert first["planSource"] == "live" and second["planSource"] == "fixture"
    assert first["planSha256"] == second["planSha256"]
    assert _artifact(recorder, first) == _artifact(replayer, second)
    assert compile_output(unknown)["planSource"] == "builtin"
    (call,) = calls(replayer.database_url, replayed.runId)
    assert (call.mode, call.source) == ("replay", "fixture")


def _artifact(stack: Stack, output: dict[str, Any]) -> bytes:
    engine = create_engine(stack.database_url, pool_size=1)
    try:
        (row,) = rows(
            engine, "SELECT content FROM app.artifacts WHERE uri = :u", u=output["planUri"]
        )
        return bytes(row.content)
    finally:
        engine.dispose()


def test_a_worker_killed_after_the_answer_does_not_ask_again(
    make_stack: Callable[..., Stack], opencode: OpenCodeServer, stub: StubModel
) -> None:
    stack = make_stack(**opencode.env())
    stack.start_worker("oc-crash", SISU_CHAOS_PAUSE=json.dumps({"compile_answered": 30}))
    stack.start_api()
    engine = create_engine(stack.database_url, pool_size=1)
    try:
        with SisuClient(stack.base_url) as client:
            run_id = start_run(client, steps=2)
            wait_for(
                lambda: rows(
                    engine, "SELECT id FROM app.opencode_calls WHERE run_id = :r", r=run_id
                ),
                timeout=30,
                what="the opencode_calls row",
            )
            asked = (stub.requests, stub.structured)
            worker = next(r for r in stack.roles if r.role == "worker" and r.alive())
            worker.kill()
            stack.start_worker("oc-crash")  # same executor id, no pause: DBOS recovers
            run = wait_status(client, run_id, RunStatus.WAITING_INPUT, timeout=60)
        assert (stub.requests, stub.structured) == asked
        (call,) = calls(stack.database_url, run_id)
        output = compile_output(run)
        assert output["planSource"] == "live" and output["opencodeCallId"] == str(call.id)
        log = next(r for r in reversed(stack.roles) if r.role == "worker").log()
        assert "reusing recorded planner call" in log
    finally:
        engine.dispose()
