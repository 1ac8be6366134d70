"""The `sisu` command: one Typer app, one module per command group."""

from __future__ import annotations

import logging
import sys

import typer
from rich.markup import escape

from sisu_kodo.cli import audit, chaos, db, demo, diffs, fleet, keys, oc, ops, runs, webhooks
from sisu_kodo.cli.output import console, err_console
from sisu_kodo.cli.settings import settings_of
from sisu_kodo.cli.stack import StackError, run_stack, stop_stack
from sisu_kodo.config import ConfigError, load_settings

app = typer.Typer(
    help="Sisu-Kodo: intent -> plan -> approval -> sandbox fan-out, durable on DBOS.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(db.app, name="db")
app.add_typer(oc.app, name="oc")
app.add_typer(keys.app, name="keys")
app.add_typer(webhooks.app, name="webhooks")
app.command("audit")(audit.audit)
app.command("demo")(demo.demo)
app.command("chaos")(chaos.chaos)
app.command("oracle")(ops.oracle)
app.command("doctor")(ops.doctor)
# Through the HTTP API (SISU_API_KEY), for operators without database access.
for command in (
    runs.runs,
    runs.run,
    runs.submit,
    runs.approve,
    runs.reject,
    runs.retry,
    runs.cancel,
    runs.logs,
    fleet.queues,
    fleet.workers,
):
    app.command()(command)
app.command("diff")(diffs.diff)


@app.callback()
def root(ctx: typer.Context) -> None:
    """Read the environment once; every command works from these settings."""
    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    for noisy in ("httpx", "alembic.runtime.migration"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    ctx.obj = load_settings()


@app.command()
def up(ctx: typer.Context) -> None:
    """Run the whole stack here: PostgreSQL (embedded if DATABASE_URL is unset), worker, API."""
    _serve_logs()

    def ready(base: str, logs: object) -> None:
        console.print(
            f"[green]sisu is up[/green]: API {base}  (logs in {logs}; `sisu stop` ends it)"
        )
        console.print(f"console: [cyan]{base}/console[/cyan] (log in with an API key)")

    raise typer.Exit(run_stack(settings_of(ctx), ready=ready))


@app.command()
def stop(ctx: typer.Context) -> None:
    """Stop what `sisu up` started (by its pid file)."""
    pid = stop_stack(settings_of(ctx))
    console.print("nothing to stop" if pid is None else f"stopped sisu up (pid {pid})")


@app.command()
def api(ctx: typer.Context) -> None:
    """The API shim alone: enqueues and reads, never executes a workflow."""
    _serve_logs()
    import uvicorn

    from sisu_kodo.api.app import create_app

    settings = settings_of(ctx)
    # The app opens the databases in its lifespan (embedded server included) and closes
    # them when uvicorn stops.
    uvicorn.run(
        create_app(settings),
        host=settings.topology.host,
        port=settings.topology.port,
        log_level="info",
    )


@app.command()
def worker(ctx: typer.Context) -> None:
    """A worker alone: executes workflows from intentQ and sbxQ."""
    _serve_logs()
    from sisu_kodo.worker.main import exit_leaving_workflows_to_recovery, run_worker

    run_worker(settings_of(ctx))
    exit_leaving_workflows_to_recovery()


def _serve_logs() -> None:
    """Long-running roles log at INFO; one-shot commands stay quiet (WARNING)."""
    logging.getLogger().setLevel(logging.INFO)
    # Alembic lists its plugins at INFO when first imported, which the roles now do after
    # this point (the CLI starts without it); a line each is noise, not news.
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)


def main() -> None:
    try:
        app()
    except (ConfigError, StackError, TimeoutError) as exc:
        # Escaped: messages quote commands such as `pip install 'sisu-kodo[embedded]'`.
        err_console.print(f"[red]error:[/red] {escape(str(exc))}")
        sys.exit(2)


if __name__ == "__main__":
    main()
