"""`sisu audit`: read the append-only audit log, newest first (database access)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import typer
from rich.table import Table

from sisu_kodo.cli.output import console
from sisu_kodo.cli.settings import settings_of


def audit(
    ctx: typer.Context,
    run_id: Annotated[str | None, typer.Option("--run-id", help="Only this run.")] = None,
    principal: Annotated[
        str | None, typer.Option("--principal", help="A key id, or 'anonymous'.")
    ] = None,
    since: Annotated[
        datetime | None, typer.Option("--since", help="Only entries at or after this time.")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=10_000)] = 100,
) -> None:
    """Who did what, when, from where, and how it ended (HTTP status and code)."""
    from sisu_kodo.db import audit as audit_log
    from sisu_kodo.db.databases import open_databases

    with (
        open_databases(settings_of(ctx), start=False) as databases,
        databases.engine(pool_size=1).connect() as conn,
    ):
        rows = audit_log.list_entries(
            conn, target=run_id, principal=principal, since=since, limit=limit
        )
    table = Table("id", "at", "principal", "action", "target", "status", "code", "client")
    for row in rows:
        who = f"{row.principal} ({row.principal_name})" if row.principal_name else row.principal
        table.add_row(
            str(row.id),
            row.at.isoformat(),
            who,
            row.action,
            row.target or "",
            str(row.status),
            row.code or "",
            row.client_addr or "",
        )
    console.print(table)
