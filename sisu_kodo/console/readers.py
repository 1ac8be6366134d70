"""What the console's run and task pages show, read through the API's own views and the
ledger: the plan card, the fan-out's progress, and every attempt of one task."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from sisu_kodo.api import service
from sisu_kodo.auth import Principal
from sisu_kodo.blobs import BlobStore
from sisu_kodo.config import Settings
from sisu_kodo.contracts.plans import Plan
from sisu_kodo.contracts.runs import (
    CompileOutput,
    ExecuteOutput,
    ExecuteProgress,
    RunView,
    StepId,
    TaskView,
)
from sisu_kodo.db import artifacts, executions, run_tasks
from sisu_kodo.errors import NotFoundError

# The plan card lists this many tasks; the task table pages through all of them.
PLAN_TASKS_SHOWN = 50
# How much of a stdout or stderr the task page shows inline; the rest is a download.
PREVIEW_BYTES = 16_384


@dataclass(frozen=True)
class Progress:
    total: int
    done: int
    succeeded: int | None  # known once the fan-out has ended
    failed: int | None

    @property
    def percent(self) -> int:
        return round(100 * self.done / self.total) if self.total else 0


def progress_of(view: RunView) -> Progress | None:
    """The fan-out's progress, from the RunView's ExecuteST output (live or recorded)."""
    output = view.execute_output()
    if isinstance(output, ExecuteOutput):
        done = output.succeeded + output.failed
        return Progress(output.taskCount, done, output.succeeded, output.failed)
    if isinstance(output, ExecuteProgress):
        return Progress(output.taskCount, output.completed, None, None)
    return None


def plan_sha256(view: RunView) -> str | None:
    compile_step = view.step(StepId.COMPILE)
    if compile_step is None or compile_step.output is None:
        return None
    return CompileOutput.model_validate(compile_step.output).planSha256


@dataclass(frozen=True)
class PlanCard:
    plan: Plan  # with its first PLAN_TASKS_SHOWN tasks
    task_count: int  # all of them


def read_plan(
    conn: sa.Connection, principal: Principal, view: RunView, *, blobs: BlobStore
) -> PlanCard | None:
    """The run's plan card, if CompileST has written it; only the tasks shown are parsed
    into models (a 10,000-task plan is a megabyte of JSON)."""
    uri = next((ref.uri for ref in view.artifacts if ref.kind == "plan_card"), None)
    if uri is None:
        return None
    card = json.loads(service.read_visible_artifact(conn, principal, uri=uri, blobs=blobs).content)
    tasks = card.get("tasks", [])
    plan = Plan.model_validate({**card, "tasks": tasks[:PLAN_TASKS_SHOWN]})
    return PlanCard(plan, len(tasks))


@dataclass(frozen=True)
class Output:
    """One stdout, stderr or file of an attempt, with the start of its text when it is one."""

    kind: str
    name: str
    uri: str
    sha256: str
    size: int
    truncated: bool  # the sandbox cut it at SISU_ARTIFACT_MAX_BYTES
    preview: str | None = None  # stdout and stderr: the first PREVIEW_BYTES
    preview_cut: bool = False  # the page shows less than the artifact holds


@dataclass(frozen=True)
class Attempt:
    number: int
    index: dict[str, Any]  # the attempt's artifact index: errCode, exitCode, sandboxRef, metrics
    outputs: list[Output] = field(default_factory=list)


@dataclass(frozen=True)
class TaskDetail:
    task: TaskView
    attempts: list[Attempt]


def task_detail(
    conn: sa.Connection,
    principal: Principal,
    *,
    run_id: str,
    task_key: str,
    settings: Settings,
    blobs: BlobStore,
) -> TaskDetail:
    """A task of a run the principal may see, with every attempt's outputs, newest first.

    Raises:
        NotFoundError: no such (visible) run, or the run has no such task.
    """
    service.require_visible_run(conn, principal, run_id=run_id)
    pending = run_tasks.read_pending_view(conn, run_id=run_id, task_key=task_key)
    if pending is None:
        raise NotFoundError(f"task {task_key} of run {run_id} not found", {"taskKey": task_key})
    (task,) = executions.with_latest_attempts(
        conn, run_id=run_id, views=[pending], max_attempts=settings.queues.task_max_attempts
    )
    metas = artifacts.list_artifacts(conn, run_id=run_id, step=StepId.EXECUTE, task_keys=[task_key])
    attempts = [
        _attempt(conn, number, meta.uri, blobs)
        for meta in metas
        if meta.kind == "artifact_index" and (number := executions.attempt_of(meta.uri))
    ]
    return TaskDetail(task, sorted(attempts, key=lambda a: a.number, reverse=True))


def _attempt(conn: sa.Connection, number: int, index_uri: str, blobs: BlobStore) -> Attempt:
    stored = artifacts.read_artifact(conn, uri=index_uri, blobs=blobs)
    index: dict[str, Any] = json.loads(stored.content) if stored else {}
    outputs = [_output(conn, item, blobs) for item in index.get("items", [])]
    return Attempt(number, index, outputs)


def _output(conn: sa.Connection, item: dict[str, Any], blobs: BlobStore) -> Output:
    uri = str(item["uri"])
    kind = str(item["kind"])
    name = uri.split("/attempt/", 1)[-1].split("/", 1)[-1]
    preview, cut = None, False
    if kind in ("stdout", "stderr"):
        stored = artifacts.read_artifact(conn, uri=uri, blobs=blobs)
        content = stored.content if stored else b""
        preview = content[:PREVIEW_BYTES].decode(errors="replace")
        cut = len(content) > PREVIEW_BYTES
    return Output(
        kind=kind,
        name=name,
        uri=uri,
        sha256=str(item["sha256"]),
        size=int(item["size"]),
        truncated=bool(item.get("truncated")),
        preview=preview,
        preview_cut=cut,
    )
