"""`sisu oc`: the OpenCode daemon."""

from __future__ import annotations

import typer

from sisu_kodo.cli.checks import print_checks
from sisu_kodo.cli.output import console, err_console
from sisu_kodo.cli.settings import settings_of
from sisu_kodo.config import ConfigError

app = typer.Typer(help="OpenCode.", no_args_is_help=True)
daemon = typer.Typer(help="The OpenCode daemon (`opencode serve`).", no_args_is_help=True)
app.add_typer(daemon, name="daemon")


@daemon.command("start")
def start(ctx: typer.Context) -> None:
    """Start `opencode serve` on 127.0.0.1:OC_SERVER_PORT (installing the pinned version)."""
    from sisu_kodo.oc.daemon import DaemonError, start_daemon

    settings = settings_of(ctx)
    try:
        status = start_daemon(settings)
    except (DaemonError, ConfigError) as exc:
        err_console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc
    verb = "started" if status.started else "already running"
    console.print(f"OpenCode {verb}: {status.url} (pid {status.pid}, log {status.log_path})")


@daemon.command("stop")
def stop(ctx: typer.Context) -> None:
    """Stop the daemon `sisu oc daemon start` started (by its pid file)."""
    from sisu_kodo.oc.daemon import stop_daemon

    pid = stop_daemon(settings_of(ctx))
    console.print("OpenCode daemon not running" if pid is None else f"stopped OpenCode (pid {pid})")


@daemon.command("health")
def health(ctx: typer.Context) -> None:
    """Report the daemon's health (manual: `oc:daemon:health`); exit 1 if needed and down."""
    from sisu_kodo.oc.health import check_daemon

    settings = settings_of(ctx)
    result = check_daemon(settings)
    checks = [
        (f"OpenCode daemon (OC_MODE={settings.planner.oc_mode.value})", result.ok, result.detail)
    ]
    raise typer.Exit(0 if print_checks("oc:daemon:health", checks) else 1)
