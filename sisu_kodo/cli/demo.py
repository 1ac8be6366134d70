"""`sisu demo`: the manual's L01-L03 against a running stack (or one it starts with --up)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, Annotated

import typer

from sisu_kodo.cli.output import console, err_console
from sisu_kodo.cli.runs import task_table, watch
from sisu_kodo.cli.settings import api_url, settings_of
from sisu_kodo.cli.stack import STOP_GRACE_SECONDS
from sisu_kodo.client import SisuClient
from sisu_kodo.config import Settings
from sisu_kodo.contracts.runs import RunStatus, RunView
from sisu_kodo.errors import AppError
from sisu_kodo.processes import terminate_processes

POLL_SECONDS = 0.2


def demo(
    ctx: typer.Context,
    goal: Annotated[str, typer.Option(help="The intent's goal.")] = "build logic",
    steps: Annotated[int, typer.Option(help="Tasks to fan out (workload.steps).")] = 10,
    concurrency: Annotated[int, typer.Option(help="Tasks of this run in flight.")] = 5,
    partition: Annotated[str, typer.Option(help="queuePartitionKey (tenant).")] = "tenant-alpha",
    approve: Annotated[
        bool, typer.Option("--approve/--wait", help="Approve the plan, or wait for a human.")
    ] = True,
    start_stack: Annotated[
        bool, typer.Option("--up", help="Start a stack for the demo and stop it afterwards.")
    ] = False,
    base: Annotated[str | None, typer.Option(help="API base URL; default from PORT.")] = None,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for each phase.")] = 300,
) -> None:
    """Create an intent, start its run, pass the approval gate and watch the fan-out."""
    settings = settings_of(ctx)
    base_url = base or api_url(settings)
    with (
        _stack(settings, enabled=start_stack),
        SisuClient(base_url, api_key=settings.api.api_key) as client,
    ):
        try:
            run = _drive(client, base_url, goal, steps, concurrency, partition, approve, timeout)
        except (AppError, TimeoutError) as exc:
            err_console.print(f"[red]demo failed:[/red] {exc}")
            raise typer.Exit(1) from exc
    raise typer.Exit(0 if run.status is RunStatus.SUCCEEDED else 1)


def _drive(
    client: SisuClient,
    base_url: str,
    goal: str,
    steps: int,
    concurrency: int,
    partition: str,
    approve: bool,
    timeout: float,
) -> RunView:
    console.rule("[bold]L01: intent and run")
    started = client.submit(goal, partition=partition, steps=steps, concurrency=concurrency)
    console.print(f"intent [cyan]{started.intentId}[/cyan] -> run [cyan]{started.runId}[/cyan]")
    console.print(f"console: [cyan]{base_url}/console/runs/{started.runId}[/cyan]")

    console.rule("[bold]L02: the approval gate")
    with console.status("compiling the plan (CompileST, DecideST)..."):
        run = client.wait(started.runId, _past_planning, timeout=timeout)
    if run.status is not RunStatus.WAITING_INPUT:
        return _finish(run)
    _show_plan(client, run)
    if approve:
        client.approve_plan(run.runId, "ops-lead", "approved by sisu demo")
        console.print("plan approved by [bold]ops-lead[/bold]")
    else:
        console.print(
            f"waiting for a human: approve it at {base_url}/console/runs/{run.runId}, or"
            " curl -sS -X POST "
            f'$BASE/runs/{run.runId}/approve-plan -d \'{{"approvedBy":"ops-lead"}}\''
        )
        run = client.wait(
            run.runId, lambda r: r.status is not RunStatus.WAITING_INPUT, timeout=timeout
        )

    console.rule("[bold]L03: fan-out")
    run = _watch_fan_out(client, run.runId, timeout)
    return _finish(run)


def _past_planning(run: RunView) -> bool:
    return run.status not in (RunStatus.QUEUED, RunStatus.RUNNING)


def _watch_fan_out(client: SisuClient, run_id: str, timeout: float) -> RunView:
    return watch(client, run_id, until=lambda run: run.status.terminal, timeout=timeout, on=console)


def _show_plan(client: SisuClient, run: RunView) -> None:
    plan_uri = next(a.uri for a in run.artifacts if a.kind == "plan_card")
    plan = json.loads(client.artifact(plan_uri))
    console.print(f"status [yellow]{run.status.value}[/yellow], lastStep {run.lastStep}")
    console.print(f"plan artifact [cyan]{plan_uri}[/cyan]")
    for line in plan["design"]:
        console.print(f"  - {line}")
    console.print(f"  {len(plan['tasks'])} task(s), e.g. [dim]{plan['tasks'][0]['command']}[/dim]")


def _finish(run: RunView) -> RunView:
    console.print(task_table(run.execute_tasks(), f"run {run.runId}: ExecuteST tasks"))
    colour = "green" if run.status is RunStatus.SUCCEEDED else "red"
    console.print(
        f"outcome: [{colour}]{run.status.value}[/{colour}]  nextAction {run.nextAction.value}"
    )
    if run.error:
        console.print(f"error: {run.error}")
    return run


@contextmanager
def _stack(settings: Settings, *, enabled: bool) -> Iterator[None]:
    """With --up, run `sisu up` as a child process for the demo's duration."""
    if not enabled:
        yield
        return
    console.print("starting the stack (`sisu up`)...")
    up = subprocess.Popen(
        [sys.executable, "-m", "sisu_kodo.cli.main", "up"],
        env=dict(os.environ),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    try:
        _wait_for_up(up)
        yield
    finally:
        terminate_processes([up], grace=STOP_GRACE_SECONDS * 2)
        console.print("stack stopped")


def _wait_for_up(up: subprocess.Popen[bytes]) -> None:
    assert up.stdout is not None
    output = []
    for raw in up.stdout:
        line = raw.decode(errors="replace")
        output.append(line)
        if "sisu is up" in line:
            console.print(line.rstrip())
            # Keep draining so the child never blocks on a full pipe.
            threading.Thread(target=_drain, args=(up.stdout,), daemon=True).start()
            return
    up.wait()
    raise typer.Exit(_fail_to_start("".join(output[-30:]), up.returncode))


def _drain(stream: IO[bytes]) -> None:
    for _ in stream:
        pass


def _fail_to_start(output: str, code: int | None) -> int:
    err_console.print(f"[red]sisu up exited ({code}) before it was ready:[/red]\n{output}")
    return 1
