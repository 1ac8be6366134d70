"""`sisu db`: migrate, or reset the ledger schema or DBOS's system schema."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa
import typer

from sisu_kodo.cli.output import console
from sisu_kodo.cli.settings import settings_of
from sisu_kodo.db import migrate
from sisu_kodo.db.bootstrap import prepare_databases
from sisu_kodo.db.embedded import resolve_database
from sisu_kodo.db.engine import create_engine

app = typer.Typer(help="Database maintenance (stop the stack first).", no_args_is_help=True)


@contextmanager
def _engine(ctx: typer.Context, *, system: bool = False) -> Iterator[sa.Engine]:
    settings, embedded = resolve_database(settings_of(ctx))
    assert settings.topology.database_url
    url = (
        (settings.topology.system_database_url or settings.topology.database_url)
        if system
        else settings.topology.database_url
    )
    engine = create_engine(url)
    try:
        yield engine
    finally:
        engine.dispose()
        if embedded is not None:
            embedded.stop()


@app.command("reset")
def reset(ctx: typer.Context) -> None:
    """Drop and recreate schema `app`, re-run migrations and seed data."""
    with _engine(ctx) as engine:
        migrate.reset_app_schema(engine)
    console.print("[green]schema app reset, migrated and seeded[/green]")


@app.command("sys-reset")
def sys_reset(ctx: typer.Context) -> None:
    """Drop DBOS's system schema (workflow history); the next start recreates it."""
    with _engine(ctx, system=True) as engine:
        migrate.reset_system_schema(engine)
    console.print("[green]DBOS system schema dropped[/green]")


@app.command("migrate")
def upgrade(ctx: typer.Context) -> None:
    """Apply pending migrations of `app` and DBOS's system schema (processes do it at start)."""
    settings = settings_of(ctx)
    with _engine(ctx) as engine:
        prepare_databases(
            engine,
            settings.topology.system_database_url
            or str(engine.url.render_as_string(hide_password=False)),
        )
    console.print("[green]schemas app and dbos are current[/green]")


@app.command("url")
def url(ctx: typer.Context) -> None:
    """Print the database URL (for `psql "$(sisu db url)"` and the manual's SQL oracles)."""
    with _engine(ctx) as engine:
        print(engine.url.render_as_string(hide_password=False).replace("+psycopg", ""))
