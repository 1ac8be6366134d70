"""The live planner: asks a real `opencode serve` (OC_MODE=live, or record: live + fixtures)."""

from __future__ import annotations

import logging

from sisu_kodo.oc.client import OpenCodeClient
from sisu_kodo.oc.fixtures import FixtureStore
from sisu_kodo.oc.port import Answer, CompileRequest, PlannerError
from sisu_kodo.oc.prompts import parse_plan, plan_ask
from sisu_kodo.oc.replay import ReplayPlanner

log = logging.getLogger(__name__)


class OpenCodePlanner:
    """Outside strict mode a failed call answers with the built-in plan, marked `fallback`
    with the reason; in strict mode it answers with no plan and the ledger raises."""

    def __init__(
        self,
        client: OpenCodeClient,
        *,
        mode: str,
        provider_id: str,
        model_id: str,
        strict: bool,
        fixtures: FixtureStore | None = None,
    ) -> None:
        self.mode = mode
        self._client = client
        self._provider_id = provider_id
        self._model_id = model_id
        self._strict = strict
        self._fixtures = fixtures
        self._builtin = ReplayPlanner()

    def answer(self, request: CompileRequest) -> Answer:
        ask = plan_ask(request)
        base = ask.answer("live")
        model = f"{self._provider_id}/{self._model_id}"
        reply = None
        try:
            reply = self._client.structured(
                agent=ask.agent,
                provider_id=self._provider_id,
                model_id=self._model_id,
                schema=ask.schema,
                text=ask.prompt,
                title=f"sisu {request.runId} CompileST #{request.attempt}",
            )
            plan = parse_plan(reply.structured)
        except PlannerError as exc:
            failed = base.model_copy(
                update={
                    "reply": reply.structured if reply else None,
                    "tokens": reply.tokens if reply else {},
                    "errorCode": exc.failure,
                    "error": exc.message,
                }
            )
            if self._strict:
                return failed
            log.warning("run %s: %s; falling back to the built-in planner", request.runId, exc)
            return failed.model_copy(
                update={
                    "plan": self._builtin.builtin_plan(request),
                    "source": "fallback",
                    "detail": f"OpenCode failed, built-in plan used instead: {exc.message}",
                }
            )
        detail = f"{model} via OpenCode, agent {ask.agent}, prompt {ask.version}"
        if self._fixtures is not None:
            path = self._fixtures.write(
                ask, reply=reply.structured, model=model, tokens=reply.tokens
            )
            detail += f"; recorded to {path}"
        return base.model_copy(
            update={
                "plan": plan,
                "reply": reply.structured,
                "tokens": reply.tokens,
                "detail": detail,
            }
        )
