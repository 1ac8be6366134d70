"""Ops API shapes: the run list and its counts, step attempts, queues, workers, bulk actions."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from sisu_kodo.contracts.health import WorkerView
from sisu_kodo.contracts.runs import NextAction, PrincipalRef, RunStatus
from sisu_kodo.contracts.text import Text

RUN_PAGE_MAX = 200
BULK_MAX = 1000
FIRST_IDS = 20

TaskStatus = Literal["pending", "retrying", "succeeded", "failed"]
# Filter text: anything PostgreSQL can hold (a partition key may be any text).
TEXT_PATTERN = r"^[^\x00]+$"


class RunQuery(BaseModel):
    """The run filter of GET /runs, GET /runs/counts and the bulk actions (camelCase on the wire).

    `q` matches the goal (case-insensitive substring), or a run or intent id exactly.
    `cursor` is the previous page's `nextCursor`; the order is newest first unless
    `oldest_first` (`order=oldest`).
    """

    model_config = ConfigDict(
        extra="forbid", alias_generator=to_camel, populate_by_name=True, frozen=True
    )

    status: list[RunStatus] = Field(default_factory=list)
    tenant: Text | None = Field(None, max_length=200, pattern=TEXT_PATTERN)
    recipe: Text | None = Field(None, max_length=200, pattern=TEXT_PATTERN)
    q: Text | None = Field(None, min_length=1, max_length=200)
    created_after: datetime | None = None
    created_before: datetime | None = None
    cursor: Text | None = Field(None, max_length=400)
    limit: int = Field(50, ge=1, le=RUN_PAGE_MAX)
    oldest_first: bool = False


class TaskCounts(BaseModel):
    """A run's decided tasks by the status of their latest attempt."""

    total: int = 0
    pending: int = 0
    retrying: int = 0
    succeeded: int = 0
    failed: int = 0


class RunSummary(BaseModel):
    runId: str
    intentId: str
    goal: str  # the goal's first line
    tenant: str
    recipe: str
    status: RunStatus
    lastStep: str | None
    nextAction: NextAction
    error: str | None
    retryCount: int
    tasks: TaskCounts
    createdAt: str
    updatedAt: str
    startedBy: PrincipalRef | None
    approvedBy: PrincipalRef | None


class RunPage(BaseModel):
    items: list[RunSummary]
    nextCursor: str | None = None


class RunCounts(BaseModel):
    """Runs per status for a filter (every status present, zeros included)."""

    statuses: dict[RunStatus, int]
    total: int


class StepAttempt(BaseModel):
    stepId: str
    phase: str
    attempt: int
    startedAt: str
    finishedAt: str | None
    durationMs: int | None  # null while the attempt runs


class RunSteps(BaseModel):
    """Every attempt of every step of a run (GET /runs/{id}/steps), in start order."""

    runId: str
    steps: list[StepAttempt]


class PartitionLoad(BaseModel):
    """One partition (tenant) of a queue: its workflows now and lately."""

    partition: str
    enqueued: int
    running: int
    finished5m: int
    finished60m: int
    failed60m: int
    concurrency: int  # the queue's per-partition limit


class QueueLoad(BaseModel):
    name: str
    partitionConcurrency: int
    workerConcurrency: int
    enqueued: int
    running: int
    partitions: list[PartitionLoad]


class QueueBoard(BaseModel):
    queues: list[QueueLoad]


class WorkerLoad(WorkerView):
    heartbeatAgeSeconds: float
    runsInFlight: int  # intentQ workflows this executor holds (PENDING)
    tasksInFlight: int  # sbxQ workflows this executor holds (PENDING)


class WorkerBoard(BaseModel):
    live: int
    dead: int
    workers: list[WorkerLoad]


class BulkRequest(RunQuery):
    """A bulk action on the runs a filter matches; `limit` caps how many it acts on.

    `dryRun` (the default) only counts: the matched total and the first ids.
    """

    limit: int = Field(100, ge=1, le=BULK_MAX)
    dry_run: bool = True


class BulkOutcome(BaseModel):
    """One run's result: its new status, or the error code and message that refused it."""

    runId: str
    ok: bool
    status: RunStatus | None = None
    code: str | None = None
    message: str | None = None


class BulkResult(BaseModel):
    dryRun: bool
    matched: int  # every run the filter matches
    firstIds: list[str]  # the first of them, in the filter's order
    acted: int  # how many were tried (at most `limit`); 0 on a dry run
    succeeded: int
    failed: int
    outcomes: list[BulkOutcome]
