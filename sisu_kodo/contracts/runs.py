"""Run bodies and projections: starting a run, the approval gate, the RunView and events."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from sisu_kodo.contracts.plans import MAX_PLAN_TASKS, TaskSpec
from sisu_kodo.contracts.text import Text
from sisu_kodo.contracts.workspaces import RunWorkspace


class RunStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    WAITING_INPUT = "waiting_input"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    RETRIES_EXCEEDED = "retries_exceeded"
    CANCELED = "canceled"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL_STATUSES


TERMINAL_STATUSES = frozenset(
    {RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.RETRIES_EXCEEDED, RunStatus.CANCELED}
)


class NextAction(StrEnum):
    NONE = "NONE"
    APPROVE_PLAN = "APPROVE_PLAN"
    APPROVE_CANARY = "APPROVE_CANARY"
    REPAIR = "REPAIR"
    START_WORKER = "START_WORKER"


class StepId(StrEnum):
    COMPILE = "CompileST"
    DECIDE = "DecideST"
    EXECUTE = "ExecuteST"


STEP_PHASES: dict[str, str] = {
    StepId.COMPILE: "compilation",
    StepId.DECIDE: "planning",
    StepId.EXECUTE: "execution",
}


class Workload(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # Upper bounds are the recipe's caps (a queue_policy_violation), not a schema error.
    concurrency: int = Field(ge=1, lt=2**31)
    steps: int = Field(ge=1, lt=2**31)
    sandboxMinutes: int | None = Field(None, ge=1, lt=2**31)


class RunStart(BaseModel):
    """Body of POST /intents/{id}/run; its canonical form is the run's identity."""

    model_config = ConfigDict(extra="forbid")

    recipeName: Text = Field("sandbox-default", min_length=1, max_length=200)
    queuePartitionKey: Text | None = Field(None, max_length=200)
    queueName: Text | None = Field(None, max_length=64)
    workload: Workload = Field(default_factory=lambda: Workload(concurrency=1, steps=1))
    traceId: Text | None = Field(None, max_length=200)


class RunStarted(BaseModel):
    runId: str
    workflowId: str
    intentId: str
    status: RunStatus
    replayed: bool = False


class ApprovePlan(BaseModel):
    """Approve the plan: every task, a subset (`tasks`), or a `canary` of the first N
    (the run parks again at APPROVE_CANARY once they ran)."""

    model_config = ConfigDict(extra="forbid")

    approvedBy: Text = Field(min_length=1, max_length=200, pattern=r"\S")
    notes: Text | None = Field(None, max_length=10_000)
    tasks: list[Annotated[Text, Field(min_length=1, max_length=200)]] | None = Field(
        None, min_length=1, max_length=MAX_PLAN_TASKS
    )
    canary: int | None = Field(None, ge=1, le=MAX_PLAN_TASKS)

    @model_validator(mode="after")
    def _one_scope(self) -> ApprovePlan:
        if self.tasks is not None and self.canary is not None:
            raise ValueError("approve either a subset (tasks) or a canary, not both")
        return self


class RejectPlan(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rejectedBy: Text = Field(min_length=1, max_length=200, pattern=r"\S")
    reason: Text | None = Field(None, max_length=10_000)


class RetryRun(BaseModel):
    """Optional body of POST /runs/{id}/retry: raise the sandbox budget for the retry
    (needed when a budget stopped the run)."""

    model_config = ConfigDict(extra="forbid")

    sandboxMinutes: int | None = Field(None, ge=1, lt=2**31)


class ExtendApproval(BaseModel):
    """Body of POST /runs/{id}/extend-approval: move the gate's deadline later."""

    model_config = ConfigDict(extra="forbid")

    seconds: int = Field(ge=1, le=30 * 24 * 3600)
    reason: Text = Field(min_length=1, max_length=10_000, pattern=r"\S")


class CommentIn(BaseModel):
    """A free-text note on the run's timeline, from a person at the gate."""

    model_config = ConfigDict(extra="forbid")

    author: Text = Field(min_length=1, max_length=200, pattern=r"\S")
    text: Text = Field(min_length=1, max_length=10_000, pattern=r"\S")


class ApproveEvent(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["approve-plan"]
    payload: ApprovePlan


class RejectEvent(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["reject-plan"]
    payload: RejectPlan


class CommentEvent(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["comment"]
    payload: CommentIn


# Body of POST /runs/{id}/events: a human's answer (or note) at the approval gate. The
# route reads it only once the run is known to wait (409 illegal_state otherwise).
RunEventIn = Annotated[ApproveEvent | RejectEvent | CommentEvent, Field(discriminator="type")]
RUN_EVENT_TYPES = ("approve-plan", "reject-plan", "comment")


class Accepted(BaseModel):
    runId: str
    status: RunStatus
    accepted: bool = True


class ApprovalExtended(Accepted):
    expiresAt: str


class RetryAccepted(Accepted):
    fromStep: str
    retryCount: int


class ArtifactRef(BaseModel):
    uri: str
    kind: str
    sha256: str
    size: int
    stepId: str
    taskKey: str | None = None


class TaskView(BaseModel):
    taskKey: str
    index: int
    name: str
    command: str
    status: Literal["pending", "retrying", "succeeded", "failed", "skipped"]
    errCode: str | None = None
    exitCode: int | None = None
    attempt: int = 0
    wallMs: int | None = None
    sandboxRef: str | None = None
    artifacts: list[str] = Field(default_factory=list)
    diffUri: str | None = None

    @classmethod
    def pending(cls, task: TaskSpec) -> TaskView:
        """A decided task that has no attempt yet."""
        return cls(
            taskKey=task.taskKey,
            index=task.index,
            name=task.name,
            command=task.command,
            status="pending",
        )


class TaskPage(BaseModel):
    """A page of ExecuteST's tasks (GET /runs/{id}/tasks)."""

    runId: str
    total: int
    offset: int
    limit: int
    tasks: list[dict[str, Any]]


# ---- step outputs (app.run_steps.output, StepView.output) ------------------------------
# Field order is the order the live view serialises; recorded outputs come back from
# JSONB, so the wire shows them as PostgreSQL orders keys, exactly as before these models.


class CompileOutput(BaseModel):
    """CompileST's recorded output: where the plan card is and what it says."""

    planUri: str
    planSha256: str
    planner: str
    planSource: str
    opencodeCallId: str | None
    planNote: str | None
    goal: str
    design: list[str]
    risks: list[str]
    tests: list[str]
    taskCount: int


class TaskPreview(BaseModel):
    taskKey: str
    name: str
    command: str
    labels: dict[str, str]


class DecideOutput(BaseModel):
    """DecideST's recorded output: the hashes the approval binds to, and a task preview."""

    planSha256: str
    tasksSha256: str
    taskListUri: str
    taskCount: int
    concurrency: int
    tasks: list[TaskPreview]
    tasksTruncated: bool
    workspaceSha256: str | None = None


class ExecuteRaw(BaseModel):
    """ExecuteST's per-task detail, the manual's `.output.raw.tasks`.

    A RunView of a large run cuts `tasks` to a page and adds `tasksTruncated`,
    `taskCount` and `tasksUri` (ignored here: the page is what the view holds).
    """

    tasks: list[TaskView]


class ExecuteOutput(BaseModel):
    """ExecuteST's recorded output once every task has ended."""

    errCode: str | None  # the first failed task's (NONE when all succeeded)
    taskCount: int
    succeeded: int
    failed: int
    wallMs: int
    tasksSha256: str
    raw: ExecuteRaw

    def failed_tasks(self, waiting: frozenset[str] = frozenset()) -> list[TaskView]:
        """Tasks that did not succeed: neither skipped (left out of a subset approval)
        nor `waiting` (not yet approved after a canary)."""
        return [
            task
            for task in self.raw.tasks
            if task.status not in ("succeeded", "skipped") and task.taskKey not in waiting
        ]


class ExecuteProgress(BaseModel):
    """ExecuteST's output in a RunView while its fan-out runs."""

    taskCount: int
    completed: int
    raw: ExecuteRaw


class StepView(BaseModel):
    stepId: str
    phase: str
    attempt: int
    startedAt: str | None
    finishedAt: str | None
    output: dict[str, Any] | None

    def execute_output(self) -> ExecuteOutput | ExecuteProgress | None:
        """This ExecuteST step's output, typed: recorded once finished, else the progress."""
        if self.output is None:
            return None
        if self.finishedAt is None:
            return ExecuteProgress.model_validate(self.output)
        return ExecuteOutput.model_validate(self.output)


class PrincipalRef(BaseModel):
    """An authenticated caller: its key id (null while auth is off) and name."""

    keyId: str | None
    name: str


class ApprovalVote(BaseModel):
    principal: PrincipalRef
    approvedBy: str  # the body's display note; `principal` is who really approved
    at: str


class ApprovalProgress(BaseModel):
    """The gate's quorum: distinct approvers of the current plan so far, and needed."""

    count: int
    needed: int
    approvers: list[ApprovalVote]


class GateView(BaseModel):
    """The approval gate's deadline, when it has one."""

    ttlSeconds: int
    openedAt: str
    warnAt: str
    expiresAt: str
    warnedAt: str | None
    closedAt: str | None
    closedAs: str | None  # answered or expired


class BudgetView(BaseModel):
    """One budget of the run: how much is used of how much is allowed (null: no limit)."""

    name: str
    used: float
    allowed: float | None
    unit: str


class RunView(BaseModel):
    runId: str
    intentId: str
    workflowId: str
    status: RunStatus
    lastStep: str | None
    nextAction: NextAction
    error: str | None
    retryCount: int
    queuePartitionKey: str
    recipeName: str
    appVersion: str
    hint: str | None = None
    createdAt: str
    updatedAt: str
    steps: list[StepView]
    artifacts: list[ArtifactRef]
    startedBy: PrincipalRef | None = None
    approvals: ApprovalProgress | None = None
    gate: GateView | None = None
    budgets: list[BudgetView] = Field(default_factory=list)
    workspace: RunWorkspace | None = None

    def step(self, step_id: StepId) -> StepView | None:
        return next((step for step in self.steps if step.stepId == step_id), None)

    def execute_output(self) -> ExecuteOutput | ExecuteProgress | None:
        execute = self.step(StepId.EXECUTE)
        return execute.execute_output() if execute else None

    def execute_tasks(self) -> list[TaskView]:
        """ExecuteST's tasks as this view shows them (live while running); [] before it."""
        output = self.execute_output()
        return output.raw.tasks if output else []


class RunEventView(BaseModel):
    seq: int
    at: str
    type: str
    status: RunStatus
    stepId: str | None
    detail: dict[str, Any]
