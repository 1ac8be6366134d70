"""`sisu keys`: create, list and revoke API keys with database access alone.

The first key cannot come from the API (no key exists yet to authorize it), so these
commands open the databases directly, as `sisu db` does; whoever can reach the database
is an admin anyway (see docs/security.md). The database and auth modules are imported by
the commands, so that the HTTP commands start without them.
"""

from __future__ import annotations

import getpass
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated

import typer
from pydantic import ValidationError
from rich.table import Table

from sisu_kodo.cli.output import console, err_console
from sisu_kodo.cli.settings import settings_of
from sisu_kodo.contracts.keys import KeyCreate, Role
from sisu_kodo.errors import AppError

if TYPE_CHECKING:
    import sqlalchemy as sa

app = typer.Typer(
    help="API keys: roles and tenants per key (database access).", no_args_is_help=True
)


@contextmanager
def _transaction(ctx: typer.Context) -> Iterator[sa.Connection]:
    from sisu_kodo.db.databases import open_databases

    with open_databases(settings_of(ctx)) as databases:
        databases.prepare()
        with databases.engine(pool_size=1).begin() as conn:
            yield conn


def _fail(exc: AppError) -> typer.Exit:
    err_console.print(f"[red]error:[/red] {exc.message}")
    return typer.Exit(1)


@app.command("create")
def create(
    ctx: typer.Context,
    name: Annotated[str, typer.Option("--name", help="The person or service holding it.")],
    role: Annotated[list[Role], typer.Option("--role", help="A role; repeat for several.")],
    tenant: Annotated[
        list[str], typer.Option("--tenant", help="A partition key, or '*'; repeatable.")
    ],
    expires: Annotated[
        str | None, typer.Option("--expires", help="Lifetime such as 30d, 12h or 90m.")
    ] = None,
) -> None:
    """Create a key and print it once: it is stored only as a keyed hash."""
    from sisu_kodo import auth

    try:
        body = KeyCreate(name=name, roles=role, tenants=tenant, expires=expires)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        err_console.print(f"[red]error:[/red] {problems}")
        raise typer.Exit(1) from exc
    try:
        with _transaction(ctx) as conn:
            created = auth.issue_key(conn, body, created_by=f"cli:{getpass.getuser()}")
    except AppError as exc:
        raise _fail(exc) from exc
    err_console.print(
        f"key {created.id} for {created.name}: roles {', '.join(created.roles)},"
        f" tenants {', '.join(created.tenants)}; shown once, store it now:"
    )
    console.print(created.key, highlight=False, soft_wrap=True)


@app.command("ls")
def list_keys(ctx: typer.Context) -> None:
    """Every key, without secrets."""
    from sisu_kodo import auth

    with _transaction(ctx) as conn:
        keys = auth.list_key_views(conn)
    table = Table("id", "name", "roles", "tenants", "created", "expires", "revoked", "last used")
    for key in keys:
        table.add_row(
            key.id,
            key.name,
            ",".join(key.roles),
            ",".join(key.tenants),
            key.createdAt,
            key.expiresAt or "",
            key.revokedAt or "",
            key.lastUsedAt or "",
        )
    console.print(table)


@app.command("revoke")
def revoke(
    ctx: typer.Context, key_id: Annotated[str, typer.Argument(help="The key's id.")]
) -> None:
    """Revoke a key: it answers 401 from now on."""
    from sisu_kodo import auth

    try:
        with _transaction(ctx) as conn:
            key = auth.revoke_key(conn, key_id=key_id)
    except AppError as exc:
        raise _fail(exc) from exc
    console.print(f"revoked key {key.id} ({key.name}) at {key.revokedAt}")
