"""`sisu chaos` (manual: `mise run -f wf:intent:chaos`): kill the worker mid fan-out, restart
it, and prove with the manual's oracles that the run finished with nothing done twice."""

from __future__ import annotations

from typing import Annotated

import typer

from sisu_kodo.cli.output import console
from sisu_kodo.cli.settings import settings_of


def chaos(
    ctx: typer.Context,
    rounds: Annotated[int, typer.Option(min=1, help="Kill-and-recover rounds.")] = 1,
    tasks: Annotated[int, typer.Option(min=4, help="Tasks per run.")] = 12,
    concurrency: Annotated[int, typer.Option(min=1, help="Tasks in flight per run.")] = 4,
    task_ms: Annotated[int, typer.Option(min=50, help="Mock work per task, ms.")] = 400,
    timeout: Annotated[float, typer.Option(help="Seconds per round.")] = 180,
) -> None:
    """Each round: run slow tasks, SIGKILL the worker mid fan-out, restart it, check oracles.

    With SBX_MOCK_JOURNAL_DIR set, each round also compares the executions the mock's
    journal saw with the attempts the ledger recorded: a hidden re-execution shows there.
    """
    # The drill needs the database and process modules; other commands start without them.
    from sisu_kodo.cli.drill import run_rounds

    all_passed = run_rounds(
        settings_of(ctx),
        rounds=rounds,
        tasks=tasks,
        concurrency=concurrency,
        task_ms=task_ms,
        timeout=timeout,
    )
    console.print("[green]all rounds passed[/green]" if all_passed else "[red]oracle failure[/red]")
    raise typer.Exit(0 if all_passed else 1)
