"""What CompileST asks OpenCode: the prompt template, the plan schema we own, and its check.

Every prompt is a versioned template here and nowhere else; the version is recorded with
each call (`app.opencode_calls.prompt_version`, fixture files), so a changed template never
silently answers from a fixture recorded for the old one: the fixture key covers the
rendered prompt and the schema hash.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from pydantic import Field, ValidationError

from sisu_kodo.canonical import canonical_json, content_hash
from sisu_kodo.contracts.plans import Plan, PlanTask
from sisu_kodo.oc.port import Answer, CompileRequest, PlannerError, PlannerFailure

PROMPT_VERSION = "plan-v1"
PLAN_AGENT = "plan"
# Bounds the model's answer: far below contracts.plans' own limits, which fit stored plans.
MAX_ANSWER_TASKS = 100
MAX_ANSWER_ITEMS = 30

PLAN_TEMPLATE = """\
You are the planner of a control plane that runs shell commands in isolated sandboxes.
Turn the goal below into a plan and answer ONLY by calling the StructuredOutput tool.

Goal: {goal}
Inputs (JSON): {inputs}
Constraints (JSON): {constraints}

The plan has:
- goal: the goal restated in one line;
- design: short sentences on how the work is split;
- tasks: exactly {task_count} task(s), each with a unique `name`, a POSIX shell `command`
  that runs alone in a fresh sandbox, and its `purpose`;
- files: files the tasks read or write;
- risks: what could go wrong;
- tests: how to tell the work succeeded.
Never edit files or run commands yourself: you only plan.
"""

# Added only for a run with a workspace, so the prompts (and fixture keys) of runs
# without one are unchanged.
WORKSPACE_TEMPLATE = """
Every task starts in its own copy of this workspace, as its working folder
({file_count} file(s), {size} bytes{truncated}):
{files}
README (first lines):
{readme}
Plan commands that work on these files; what they change is returned as a diff.
"""


class PlanAnswer(Plan):
    """The plan as the model must give it: the stored Plan shape, tighter bounds."""

    tasks: list[PlanTask] = Field(min_length=1, max_length=MAX_ANSWER_TASKS)
    design: list[str] = Field(default_factory=list, max_length=MAX_ANSWER_ITEMS)
    files: list[str] = Field(default_factory=list, max_length=MAX_ANSWER_ITEMS)
    risks: list[str] = Field(default_factory=list, max_length=MAX_ANSWER_ITEMS)
    tests: list[str] = Field(default_factory=list, max_length=MAX_ANSWER_ITEMS)


@dataclass(frozen=True)
class PlanAsk:
    """One rendered question: what is sent, and the key a fixture of it is stored under."""

    agent: str
    schema: dict[str, Any]
    schema_hash: str
    prompt: str
    version: str

    def answer(self, source: str) -> Answer:
        """An Answer to this question, with no plan yet, from `source`."""
        return Answer(
            plan=None,
            source=source,
            agent=self.agent,
            schemaHash=self.schema_hash,
            prompt=self.prompt,
            promptVersion=self.version,
            fixtureKey=self.fixture_key,
        )

    @property
    def fixture_key(self) -> str:
        return content_hash(
            {"agent": self.agent, "schemaHash": self.schema_hash, "prompt": self.prompt}
        )


def plan_schema() -> dict[str, Any]:
    """PlanAnswer's JSON schema with `$defs` inlined: tool schemas reach every provider, and
    not all of them resolve references."""
    schema = PlanAnswer.model_json_schema()
    definitions = schema.pop("$defs", {})
    inlined: dict[str, Any] = _inline(schema, definitions)
    return inlined


def _inline(node: Any, definitions: dict[str, Any]) -> Any:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            return _inline(copy.deepcopy(definitions[ref.removeprefix("#/$defs/")]), definitions)
        return {key: _inline(value, definitions) for key, value in node.items()}
    if isinstance(node, list):
        return [_inline(item, definitions) for item in node]
    return node


def plan_ask(request: CompileRequest) -> PlanAsk:
    """The question for `request`; run id and attempt stay out so fixtures match across runs."""
    schema = plan_schema()
    prompt = PLAN_TEMPLATE.format(
        goal=request.goal.strip(),
        inputs=canonical_json(request.inputs),
        constraints=canonical_json(request.constraints),
        task_count=request.taskCount,
    ) + _workspace_section(request.workspace)
    return PlanAsk(
        agent=PLAN_AGENT,
        schema=schema,
        schema_hash=content_hash(schema),
        prompt=prompt,
        version=PROMPT_VERSION,
    )


def _workspace_section(summary: dict[str, Any] | None) -> str:
    if not summary:
        return ""
    files = "\n".join(f"- {f['path']} ({f['size']} bytes)" for f in summary.get("files", []))
    return WORKSPACE_TEMPLATE.format(
        file_count=summary.get("fileCount", 0),
        size=summary.get("size", 0),
        truncated=", list cut short" if summary.get("filesTruncated") else "",
        files=files or "(no files)",
        readme=summary.get("readme") or "(no README)",
    )


def parse_plan(structured: Any) -> Plan:
    """Validate the model's structured answer on our side: OpenCode passes anything through."""
    if not isinstance(structured, dict):
        raise PlannerError.of(
            PlannerFailure.INVALID_PLAN,
            f"the structured answer is {type(structured).__name__}, not a JSON object",
        )
    try:
        answer = PlanAnswer.model_validate(structured)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc']) or '<root>'}: {error['msg']}"
            for error in exc.errors()[:5]
        )
        raise PlannerError.of(
            PlannerFailure.INVALID_PLAN,
            f"the plan does not match the schema ({exc.error_count()} problem(s)): {problems}",
        ) from exc
    return Plan.model_validate(answer.model_dump())
