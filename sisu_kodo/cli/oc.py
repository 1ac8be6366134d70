"""`sisu oc`: the OpenCode daemon."""

from __future__ import annotations

import typer

from sisu_kodo.cli.checks import print_checks
from sisu_kodo.cli.settings import settings_of
from sisu_kodo.oc.health import check_daemon

app = typer.Typer(help="OpenCode.", no_args_is_help=True)
daemon = typer.Typer(help="The OpenCode daemon (`opencode serve`).", no_args_is_help=True)
app.add_typer(daemon, name="daemon")


@daemon.command("health")
def health(ctx: typer.Context) -> None:
    """Report the daemon's health (manual: `oc:daemon:health`); exit 1 if needed and down."""
    settings = settings_of(ctx)
    result = check_daemon(settings)
    checks = [(f"OpenCode daemon (OC_MODE={settings.oc_mode.value})", result.ok, result.detail)]
    raise typer.Exit(0 if print_checks("oc:daemon:health", checks) else 1)
