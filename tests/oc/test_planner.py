"""The live planner against the real server: structured plans, bad answers, stalls."""

from __future__ import annotations

import pytest

from sisu_kodo.oc.health import client_for
from sisu_kodo.oc.opencode import OpenCodePlanner
from sisu_kodo.oc.port import CompileRequest, PlannerFailure
from sisu_kodo.oc.prompts import plan_schema
from tests.oc.conftest import MODEL, PROVIDER, OpenCodeServer
from tests.oc.stub_model import STUB_PLAN, StubModel

pytestmark = pytest.mark.integration


def request(goal: str = "lint and test the repo") -> CompileRequest:
    return CompileRequest(runId="run-direct", goal=goal, inputs={}, constraints={}, taskCount=2)


def planner(opencode: OpenCodeServer, *, strict: bool, timeout: str = "20") -> OpenCodePlanner:
    settings = opencode.settings_with(OC_REQUEST_TIMEOUT_SECONDS=timeout)
    return OpenCodePlanner(
        client_for(settings), mode="live", provider_id=PROVIDER, model_id=MODEL, strict=strict
    )


def test_health_and_providers(opencode: OpenCodeServer) -> None:
    with client_for(opencode.settings) as client:
        assert client.health() == {"healthy": True, "version": "1.18.33"}
        assert client.provider_ids() == [PROVIDER]


def test_a_live_answer_is_the_stub_plan(opencode: OpenCodeServer, stub: StubModel) -> None:
    before = stub.structured
    answer = planner(opencode, strict=True).answer(request())
    assert answer.error is None and answer.source == "live"
    assert answer.plan is not None and answer.plan.model_dump() == STUB_PLAN
    assert answer.reply == STUB_PLAN and answer.tokens.get("total") == 30
    assert stub.structured == before + 1
    assert stub.api_keys[-1] == "Bearer stub-key"


def test_schema_is_bounded_and_self_contained() -> None:
    schema = plan_schema()
    assert "$defs" not in schema and "$ref" not in str(schema)
    assert schema["properties"]["tasks"]["maxItems"] == 100
    assert schema["additionalProperties"] is False


def test_malformed_answer_is_rejected_by_our_schema(
    opencode: OpenCodeServer, stub: StubModel
) -> None:
    stub.malformed = True
    answer = planner(opencode, strict=True).answer(request())
    assert answer.plan is None
    assert answer.errorCode is PlannerFailure.INVALID_PLAN
    assert answer.error is not None
    assert "does not match the schema" in answer.error
    assert "tasks" in answer.error and "goal" in answer.error
    assert answer.reply == {"goal": 7, "tasks": "all of them", "mood": "confident"}


def test_malformed_answer_falls_back_outside_strict_mode(
    opencode: OpenCodeServer, stub: StubModel
) -> None:
    stub.malformed = True
    answer = planner(opencode, strict=False).answer(request("ship it"))
    assert answer.source == "fallback" and answer.errorCode is PlannerFailure.INVALID_PLAN
    assert answer.plan is not None and answer.plan.goal == "ship it"
    assert answer.detail is not None and "built-in plan used instead" in answer.detail


def test_a_stalled_prompt_is_aborted_and_retried(opencode: OpenCodeServer, stub: StubModel) -> None:
    stub.hang_next = 1
    before = stub.structured
    answer = planner(opencode, strict=True, timeout="3").answer(request())
    assert answer.error is None and answer.source == "live"
    assert stub.structured == before + 2  # the stalled ask, then the retry


def test_a_model_that_keeps_stalling_fails_with_timeout(
    opencode: OpenCodeServer, stub: StubModel
) -> None:
    stub.hang_next = 2
    answer = planner(opencode, strict=True, timeout="2").answer(request())
    assert answer.plan is None and answer.errorCode is PlannerFailure.TIMEOUT
    assert answer.error is not None and "twice" in answer.error
