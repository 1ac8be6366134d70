"""Run commands over the HTTP API: list, show, submit, approve, reject, retry, cancel, logs.

Each prints a table or line for people and, with --json, the API's answer for scripts;
exit codes are `remote.Exit`'s (docs/cli.md).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

import typer
from pydantic import BaseModel
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from sisu_kodo.cli.output import console, err_console
from sisu_kodo.cli.remote import Exit, JsonOption, TimeoutOption, emit_json, remote
from sisu_kodo.client import SisuClient
from sisu_kodo.contracts.ops import RunPage, RunQuery
from sisu_kodo.contracts.runs import (
    CompileOutput,
    ExecuteOutput,
    RunEventView,
    RunStatus,
    RunView,
    StepId,
    TaskPage,
    TaskView,
)
from sisu_kodo.deadlines import wait_until
from sisu_kodo.errors import NotFoundError

POLL_SECONDS = 0.3
TASKS_SHOWN = 100
TASK_SCAN_PAGE = 1000

RunIdArgument = Annotated[str, typer.Argument(help="The run id (run_...).", metavar="ID")]
ByOption = Annotated[str, typer.Option("--by", help="Your name, recorded with the decision.")]
WaitOption = Annotated[bool, typer.Option("--wait", help="Follow the run with live progress.")]


# ---- listing and showing -------------------------------------------------------------------


def runs(
    ctx: typer.Context,
    status: Annotated[
        list[RunStatus] | None, typer.Option("--status", help="Only these statuses (repeat).")
    ] = None,
    tenant: Annotated[str | None, typer.Option(help="Only this tenant.")] = None,
    recipe: Annotated[str | None, typer.Option(help="Only this recipe.")] = None,
    query: Annotated[
        str | None, typer.Option("--query", "-q", help="Goal text, or a run or intent id.")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=200, help="Runs per page.")] = 20,
    cursor: Annotated[str | None, typer.Option(help="The page after this cursor.")] = None,
    oldest: Annotated[bool, typer.Option("--oldest", help="Oldest first.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Runs of your tenants, newest first, with their task counts."""
    with remote(ctx) as client:
        page = client.list_runs(
            RunQuery(
                status=status or [],
                tenant=tenant,
                recipe=recipe,
                q=query,
                limit=limit,
                cursor=cursor,
                oldest_first=oldest,
            )
        )
    if as_json:
        emit_json(page)
        return
    _print_page(page)


def _print_page(page: RunPage) -> None:
    table = Table("run", "status", "next", "tenant", "tasks ok/failed/all", "created", "goal")
    for item in page.items:
        tasks = item.tasks
        table.add_row(
            item.runId,
            item.status.value,
            item.nextAction.value,
            item.tenant,
            f"{tasks.succeeded}/{tasks.failed}/{tasks.total}",
            item.createdAt[:19],
            escape(item.goal[:60]),
        )
    console.print(table)
    if page.nextCursor:
        console.print(f"more: sisu runs --cursor {page.nextCursor}")


class RunDetail(BaseModel):
    """`sisu run --json`: the RunView and the first page of its tasks."""

    run: RunView
    tasks: TaskPage


def run(ctx: typer.Context, run_id: RunIdArgument, as_json: JsonOption = False) -> None:
    """One run: its header, its plan and its tasks."""
    with remote(ctx) as client:
        detail = RunDetail(
            run=client.get_run(run_id), tasks=client.tasks(run_id, limit=TASKS_SHOWN)
        )
    if as_json:
        emit_json(detail)
        return
    _print_header(detail.run)
    _print_plan(detail.run)
    tasks = [TaskView.model_validate(task) for task in detail.tasks.tasks]
    if tasks:
        console.print(task_table(tasks, f"tasks ({len(tasks)} of {detail.tasks.total})"))


def _print_header(view: RunView) -> None:
    header = Table.grid(padding=(0, 2))
    fields = {
        "run": view.runId,
        "status": view.status.value,
        "lastStep": view.lastStep or "-",
        "nextAction": view.nextAction.value,
        "tenant": view.queuePartitionKey,
        "recipe": view.recipeName,
        "retries": str(view.retryCount),
        "started by": view.startedBy.name if view.startedBy else "-",
        "approvals": _approvals(view),
        "created": view.createdAt,
        "updated": view.updatedAt,
    }
    if view.error:
        fields["error"] = view.error
    if view.hint:
        fields["hint"] = view.hint
    for name, value in fields.items():
        header.add_row(f"[bold]{name}[/bold]", escape(value))
    console.print(header)


def _approvals(view: RunView) -> str:
    if view.approvals is None:
        return "-"
    names = ", ".join(vote.principal.name for vote in view.approvals.approvers)
    return f"{view.approvals.count} of {view.approvals.needed}" + (f" ({names})" if names else "")


def _print_plan(view: RunView) -> None:
    compiled = view.step(StepId.COMPILE)
    if compiled is None or compiled.output is None:
        console.print("plan: not compiled yet")
        return
    plan = CompileOutput.model_validate(compiled.output)
    console.print(f"[bold]plan[/bold] ({plan.planner}, {plan.taskCount} task(s)): {plan.planUri}")
    for line in plan.design:
        console.print(f"  - {escape(line)}")


def task_table(tasks: list[TaskView], title: str) -> Table:
    """Tasks as `sisu run`, `sisu demo` and `sisu logs` show them."""
    table = Table(title=title)
    for column in ("task", "key", "status", "errCode", "exit", "attempt", "wallMs", "sandboxRef"):
        table.add_column(column)
    for task in tasks:
        table.add_row(
            task.name,
            task.taskKey[:12],
            task.status,
            str(task.errCode),
            str(task.exitCode),
            str(task.attempt),
            str(task.wallMs),
            str(task.sandboxRef),
        )
    return table


# ---- starting and deciding -----------------------------------------------------------------


def submit(
    ctx: typer.Context,
    goal: Annotated[str, typer.Argument(help="What the run should achieve.")],
    steps: Annotated[int, typer.Option(min=1, help="Tasks to fan out (workload.steps).")] = 10,
    concurrency: Annotated[int, typer.Option(min=1, help="Tasks in flight at once.")] = 5,
    tenant: Annotated[
        str | None, typer.Option(help="queuePartitionKey; default: your key's one tenant.")
    ] = None,
    recipe: Annotated[str, typer.Option(help="The recipe.")] = "sandbox-default",
    wait: Annotated[
        bool, typer.Option("--wait", help="Follow it live until the gate or the end.")
    ] = False,
    timeout: TimeoutOption = 300,
    as_json: JsonOption = False,
) -> None:
    """Post an intent and start its run; prints the run id (progress goes to stderr)."""
    with remote(ctx) as client:
        started = client.submit(
            goal, partition=tenant, steps=steps, concurrency=concurrency, recipe=recipe
        )
        if as_json:
            emit_json(started)
        else:
            typer.echo(started.runId)
        if not wait:
            return
        view = watch(client, started.runId, until=_at_gate_or_end, timeout=timeout)
    if view.status is RunStatus.WAITING_INPUT:
        err_console.print(
            f"plan ready for review: sisu run {view.runId}; sisu approve {view.runId}"
        )
        return
    raise typer.Exit(_outcome(view))


def _at_gate_or_end(view: RunView) -> bool:
    return view.status is RunStatus.WAITING_INPUT or view.status.terminal


def _outcome(view: RunView) -> Exit:
    colour = "green" if view.status is RunStatus.SUCCEEDED else "red"
    err_console.print(f"run {view.runId}: [{colour}]{view.status.value}[/{colour}]")
    if view.error:
        err_console.print(f"error: {escape(view.error)}")
    return Exit.OK if view.status is RunStatus.SUCCEEDED else Exit.RUN_NOT_SUCCEEDED


def watch(
    client: SisuClient,
    run_id: str,
    *,
    until: Callable[[RunView], bool],
    timeout: float,
    on: Console = err_console,
) -> RunView:
    """Poll the run with a live progress line (status, tasks done of all) until `until`."""
    with Progress(
        TextColumn("[bold]{task.fields[status]}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("tasks"),
        TimeElapsedColumn(),
        console=on,
    ) as progress:
        bar = progress.add_task("run", total=None, status="queued")

        def reached(view: RunView) -> bool:
            total, done = _task_progress(view)
            status = f"{view.status.value} {view.lastStep or ''}".strip()
            progress.update(bar, total=total or None, completed=done, status=status)
            return until(view)

        return client.wait(run_id, reached, timeout=timeout, poll=POLL_SECONDS)


def _task_progress(view: RunView) -> tuple[int, int]:
    """(tasks, finished tasks) of the fan-out, from counts the view carries for every size."""
    output = view.execute_output()
    if output is None:
        return 0, 0
    if isinstance(output, ExecuteOutput):
        return output.taskCount, output.succeeded + output.failed
    return output.taskCount, output.completed


def approve(
    ctx: typer.Context,
    run_id: RunIdArgument,
    note: Annotated[str | None, typer.Option(help="A note kept with the approval.")] = None,
    by: ByOption = "sisu-cli",
    wait: WaitOption = False,
    timeout: TimeoutOption = 600,
    as_json: JsonOption = False,
) -> None:
    """Approve the run's plan; with --wait, follow the fan-out to the end."""
    with remote(ctx) as client:
        accepted = client.approve_plan(run_id, by, note)
        _answer(accepted, as_json, f"approved: run {run_id} is {accepted.status.value}")
        if not wait or accepted.status is RunStatus.WAITING_INPUT:
            return
        view = watch(client, run_id, until=lambda v: v.status.terminal, timeout=timeout)
    raise typer.Exit(_outcome(view))


def reject(
    ctx: typer.Context,
    run_id: RunIdArgument,
    reason: Annotated[str, typer.Option(help="Why the plan is rejected.")],
    by: ByOption = "sisu-cli",
    as_json: JsonOption = False,
) -> None:
    """Reject the run's plan: the run ends failed, for good."""
    with remote(ctx) as client:
        accepted = client.reject_plan(run_id, by, reason)
    _answer(accepted, as_json, f"rejected: run {run_id} is {accepted.status.value}")


def retry(ctx: typer.Context, run_id: RunIdArgument, as_json: JsonOption = False) -> None:
    """Resume a failed run from its failed step (same run id, succeeded tasks kept)."""
    with remote(ctx) as client:
        accepted = client.retry(run_id)
    line = f"retrying: run {run_id} is {accepted.status.value} from {accepted.fromStep}"
    _answer(accepted, as_json, f"{line} (retry {accepted.retryCount})")


def cancel(ctx: typer.Context, run_id: RunIdArgument, as_json: JsonOption = False) -> None:
    """Stop the run and its tasks."""
    with remote(ctx) as client:
        accepted = client.cancel(run_id)
    _answer(accepted, as_json, f"canceled: run {run_id} is {accepted.status.value}")


def _answer(answer: BaseModel, as_json: bool, line: str) -> None:
    """The API's answer as JSON, or one line for people."""
    if as_json:
        emit_json(answer)
    else:
        console.print(line)


# ---- logs ------------------------------------------------------------------------------------


def logs(
    ctx: typer.Context,
    run_id: RunIdArgument,
    task: Annotated[
        str | None, typer.Option(help="A task's name, key or key prefix: its output.")
    ] = None,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep going until the run (or task) ends.")
    ] = False,
    timeout: TimeoutOption = 600,
    as_json: JsonOption = False,
) -> None:
    """The run's events (phase transitions), or a task's stdout and stderr."""
    with remote(ctx) as client:
        if task is None:
            events = client.follow_events(run_id) if follow else iter(client.events(run_id))
            for event in events:
                _print_event(event, as_json)
            return
        found = _find_task(client, run_id, task)
        if follow:
            found = wait_until(
                lambda: _find_task(client, run_id, task),
                until=lambda view: view.status in ("succeeded", "failed"),
                timeout=timeout,
                interval=POLL_SECONDS,
                what=f"task {task} of run {run_id} still running after {timeout:.0f}s",
            )
        outputs = {uri: client.artifact(uri).decode(errors="replace") for uri in found.artifacts}
    if as_json:
        emit_json(TaskLog(task=found, outputs=outputs))
        return
    console.print(task_table([found], f"task {found.name} of run {run_id}"))
    for uri, text in outputs.items():
        console.rule(escape(uri.rsplit("/attempt/", 1)[-1]))
        console.print(escape(text), end="" if text.endswith("\n") else "\n", highlight=False)


class TaskLog(BaseModel):
    """`sisu logs --task --json`: the task and its latest attempt's outputs by URI."""

    task: TaskView
    outputs: dict[str, str]


def _print_event(event: RunEventView, as_json: bool) -> None:
    if as_json:
        typer.echo(event.model_dump_json())
        return
    step = f" {event.stepId}" if event.stepId else ""
    console.print(
        f"{event.seq:>4} {event.at[:23]} {event.type:<20} {event.status.value}{step}",
        highlight=False,
    )


def _find_task(client: SisuClient, run_id: str, wanted: str) -> TaskView:
    """The task named `wanted` (its name, key or a key prefix), scanning pages in SQL order."""
    offset = 0
    while True:
        page = client.tasks(run_id, offset=offset, limit=TASK_SCAN_PAGE)
        for raw in page.tasks:
            view = TaskView.model_validate(raw)
            if wanted in (view.name, view.taskKey) or view.taskKey.startswith(wanted):
                return view
        offset += TASK_SCAN_PAGE
        if offset >= page.total:
            raise NotFoundError(f"run {run_id} has no task {wanted!r}", {"task": wanted})
