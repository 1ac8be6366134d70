"""The deterministic planner: the same intent always yields the same plan, no model needed."""

from __future__ import annotations

import shlex

from sisu_kodo.contracts.plans import Plan, PlanTask
from sisu_kodo.oc.port import CompileRequest, PlanResult


class ReplayPlanner:
    mode = "replay"

    def compile(self, request: CompileRequest) -> PlanResult:
        return PlanResult(plan=self.builtin_plan(request), source="builtin")

    def builtin_plan(self, request: CompileRequest) -> Plan:
        goal = request.goal.strip()
        count = request.taskCount
        tasks = [
            PlanTask(
                name=f"task-{index:03d}",
                command=f"echo {shlex.quote(f'[{index}/{count}] {goal}')}",
                purpose=f"Part {index} of {count} towards: {goal}",
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
