"""`sisu diff`: print a run's (or one task's) changes to its workspace, ready for `git apply`."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from sisu_kodo.cli.output import err_console
from sisu_kodo.cli.settings import settings_of
from sisu_kodo.client import SisuClient
from sisu_kodo.errors import AppError


def diff(
    ctx: typer.Context,
    run_id: Annotated[str, typer.Argument(help="The run.")],
    task: Annotated[
        str | None, typer.Option("--task", help="Only this task (its taskKey).")
    ] = None,
    base: Annotated[str | None, typer.Option(help="API base URL; default from PORT.")] = None,
) -> None:
    """The unified diff on stdout (pipe it to `git apply`); binary changes and conflicts on
    stderr, since a patch cannot carry them."""
    settings = settings_of(ctx)
    base_url = base or f"http://{settings.topology.host}:{settings.topology.port}"
    try:
        with SisuClient(base_url, api_key=settings.api.api_key) as client:
            if task is None:
                found = client.run_diff(run_id)
                patch, files = found.patch, [f for t in found.tasks for f in t.files]
                conflicts = found.conflicts
            else:
                one = client.task_diff(run_id, task)
                patch, files, conflicts = one.patch, one.files, []
    except AppError as exc:
        err_console.print(f"[red]error:[/red] {exc.code}: {exc.message}")
        raise typer.Exit(1) from exc
    sys.stdout.write(patch)
    for file in files:
        if file.binary:
            err_console.print(f"binary {file.status}: {file.path} sha256={file.sha256}")
    for path in conflicts:
        err_console.print(f"[yellow]conflict[/yellow]: {path} is changed by more than one task")
