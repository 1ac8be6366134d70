"""The deterministic planner: recorded fixtures first, else the built-in plan, no model needed."""

from __future__ import annotations

import shlex

from sisu_kodo.contracts.plans import Plan, PlanTask
from sisu_kodo.oc.fixtures import FixtureStore
from sisu_kodo.oc.port import Answer, CompileRequest, PlannerError, PlanResult
from sisu_kodo.oc.prompts import parse_plan, plan_ask

# The door takes goals of up to MAX_GOAL_CHARS (10,000) characters, but PlanTask holds a
# 2,000-character purpose and a 10,000-character command (in which shell quoting can
# quintuple a goal's length): each task cites the goal's start only, so every goal the
# door accepts gets a valid plan, and a long goal does not swell each of its tasks.
GOAL_EXCERPT_CHARS = 200


class ReplayPlanner:
    mode = "replay"

    def __init__(self, fixtures: FixtureStore | None = None) -> None:
        self._fixtures = fixtures

    def compile(self, request: CompileRequest) -> PlanResult:
        answer = self.answer(request)
        assert answer.plan is not None
        return PlanResult(plan=answer.plan, source=answer.source, detail=answer.detail)

    def answer(self, request: CompileRequest) -> Answer:
        ask = plan_ask(request)
        base = ask.answer("builtin")
        recorded = self._fixtures.read(ask.fixture_key) if self._fixtures else None
        if recorded is None:
            return base.model_copy(update={"plan": self.builtin_plan(request)})
        assert self._fixtures is not None
        where = self._fixtures.path(ask.fixture_key)
        try:
            plan = parse_plan(recorded.get("reply"))
        except PlannerError as exc:
            # A fixture that no longer fits the schema is a broken recording: fail loudly.
            return base.model_copy(
                update={
                    "source": "fixture",
                    "reply": recorded.get("reply"),
                    "errorCode": exc.failure,
                    "error": f"{exc.message} (fixture {where})",
                }
            )
        return base.model_copy(
            update={
                "plan": plan,
                "source": "fixture",
                "reply": recorded.get("reply"),
                "tokens": recorded.get("tokens") or {},
                "detail": f"replayed {where} ({recorded.get('model', '?')})",
            }
        )

    def builtin_plan(self, request: CompileRequest) -> Plan:
        goal = request.goal.strip()
        excerpt = _excerpt(goal)
        count = request.taskCount
        tasks = [
            PlanTask(
                name=f"task-{index:03d}",
                command=f"echo {shlex.quote(f'[{index}/{count}] {excerpt}')}",
                purpose=f"Part {index} of {count} towards: {excerpt}",
            )
            for index in range(1, count + 1)
        ]
        return Plan(
            goal=goal,
            design=[
                f"Split the goal into {count} independent sandbox task(s).",
                "Run each task in its own sandbox and aggregate the results.",
            ],
            tasks=tasks,
            files=[],
            risks=["Tasks share no state; a task that needs another's output must say so."],
            tests=[f"Every task exits 0 ({count} in all)."],
        )


def _excerpt(goal: str) -> str:
    if len(goal) <= GOAL_EXCERPT_CHARS:
        return goal
    return f"{goal[:GOAL_EXCERPT_CHARS].rstrip()}..."
