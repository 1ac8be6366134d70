"""`sisu queues` and `sisu workers`: the queue and worker boards of the HTTP API."""

from __future__ import annotations

import typer
from rich.table import Table

from sisu_kodo.cli.output import console
from sisu_kodo.cli.remote import JsonOption, emit_json, remote


def queues(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """Per queue and tenant: enqueued, running, finished in 5 and 60 minutes, the limit."""
    with remote(ctx) as client:
        board = client.queues()
    if as_json:
        emit_json(board)
        return
    table = Table("queue", "partition", "enqueued", "running", "done 5m", "done 60m", "failed 60m")
    table.add_column("limit")
    for queue in board.queues:
        table.add_row(
            f"[bold]{queue.name}[/bold]",
            "(all)",
            str(queue.enqueued),
            str(queue.running),
            "",
            "",
            "",
            f"{queue.partitionConcurrency}/partition, {queue.workerConcurrency}/worker",
        )
        for part in queue.partitions:
            table.add_row(
                "",
                part.partition,
                str(part.enqueued),
                str(part.running),
                str(part.finished5m),
                str(part.finished60m),
                str(part.failed60m),
                str(part.concurrency),
            )
    console.print(table)


def workers(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """Live and dead workers: version, host, pid, heartbeat age, runs and tasks held."""
    with remote(ctx) as client:
        board = client.workers()
    if as_json:
        emit_json(board)
        return
    table = Table("executor", "state", "version", "host", "pid", "heartbeat", "runs", "tasks")
    for worker in board.workers:
        table.add_row(
            worker.executorId,
            "[green]live[/green]" if worker.alive else "[red]dead[/red]",
            worker.appVersion,
            worker.hostname,
            str(worker.pid),
            f"{worker.heartbeatAgeSeconds:.1f}s ago",
            str(worker.runsInFlight),
            str(worker.tasksInFlight),
        )
    console.print(table)
    console.print(f"{board.live} live, {board.dead} dead")
