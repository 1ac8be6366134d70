"""`sisu db`: migrate, or reset the ledger schema or DBOS's system schema."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import typer

from sisu_kodo.cli.output import console
from sisu_kodo.cli.settings import settings_of

if TYPE_CHECKING:
    import sqlalchemy as sa

app = typer.Typer(help="Database maintenance (stop the stack first).", no_args_is_help=True)


@contextmanager
def _engine(ctx: typer.Context, *, system: bool = False) -> Iterator[sa.Engine]:
    from sisu_kodo.db.databases import open_databases

    with open_databases(settings_of(ctx)) as databases:
        yield databases.engine(system=system)


@app.command("reset")
def reset(ctx: typer.Context) -> None:
    """Drop and recreate schema `app`, re-run migrations and seed data."""
    from sisu_kodo.db import migrate

    with _engine(ctx) as engine:
        migrate.reset_app_schema(engine)
    console.print("[green]schema app reset, migrated and seeded[/green]")


@app.command("sys-reset")
def sys_reset(ctx: typer.Context) -> None:
    """Drop DBOS's system schema (workflow history); the next start recreates it."""
    from sisu_kodo.db import migrate

    with _engine(ctx, system=True) as engine:
        migrate.reset_system_schema(engine)
    console.print("[green]DBOS system schema dropped[/green]")


@app.command("migrate")
def upgrade(ctx: typer.Context) -> None:
    """Apply pending migrations of `app` and DBOS's system schema (processes do it at start)."""
    from sisu_kodo.db.databases import open_databases

    with open_databases(settings_of(ctx)) as databases:
        databases.prepare()
    console.print("[green]schemas app and dbos are current[/green]")


@app.command("url")
def url(ctx: typer.Context) -> None:
    """Print the database URL (for `psql "$(sisu db url)"` and the manual's SQL oracles)."""
    with _engine(ctx) as engine:
        print(engine.url.render_as_string(hide_password=False).replace("+psycopg", ""))
