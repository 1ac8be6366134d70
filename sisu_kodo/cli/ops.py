"""`sisu oracle` and `sisu doctor`: read the ledger and the fleet directly, as the manual's
triage does ("bypass logs; trust the ledger")."""

from __future__ import annotations

from typing import Annotated

import sqlalchemy as sa
import typer
from dbos import DBOSClient

from sisu_kodo import auth
from sisu_kodo.cli.checks import print_checks
from sisu_kodo.cli.settings import settings_of
from sisu_kodo.config import APP_NAME, ConfigError, Settings
from sisu_kodo.db import migrate, oracles, stuck_runs, workers
from sisu_kodo.db.databases import Databases, open_databases
from sisu_kodo.oc.health import check_daemon
from sisu_kodo.sbx import create_provider


def oracle(
    ctx: typer.Context,
    run_id: Annotated[str, typer.Argument(help="The run to check.")],
    expect_success: Annotated[
        bool, typer.Option("--expect-success/--any-outcome", help="Require a succeeded run.")
    ] = True,
) -> None:
    """Run every SQL oracle of the manual for one run; exit 1 on any failure."""
    with (
        open_databases(settings_of(ctx), start=False) as databases,
        databases.engine(pool_size=1).connect() as conn,
    ):
        results = oracles.check_run(conn, run_id=run_id, expect_success=expect_success)
    passed = print_checks(f"oracles for {run_id}", ((r.name, r.passed, r.detail) for r in results))
    raise typer.Exit(0 if passed else 1)


def doctor(ctx: typer.Context) -> None:
    """Check the database, DBOS, worker heartbeats and app versions, OpenCode and sandboxes."""
    settings = settings_of(ctx)
    checks = [*_database_checks(settings), _opencode_check(settings), _sandbox_check(settings)]
    raise typer.Exit(0 if print_checks("sisu doctor", checks) else 1)


def _database_checks(settings: Settings) -> list[tuple[str, bool, str]]:
    try:
        with open_databases(settings, start=False) as databases:
            engine = databases.engine(pool_size=1)
            with engine.connect() as conn:
                return [
                    ("database", True, engine.url.render_as_string(hide_password=True)),
                    _migrations_check(conn),
                    _dbos_schema_check(conn),
                    _auth_check(conn, settings),
                    *_fleet_checks(conn, settings),
                    _stuck_runs_check(conn, databases, settings),
                ]
    except ConfigError as exc:
        return [("database", False, str(exc))]
    except sa.exc.DBAPIError as exc:
        return [("database", False, f"unreachable: {exc.orig}")]


def _auth_check(conn: sa.Connection, settings: Settings) -> tuple[str, bool, str]:
    """Auth off is allowed (on loopback) but worth a warning; it does not fail the doctor."""
    if conn.execute(sa.text("SELECT to_regclass('app.api_keys')")).scalar() is None:
        return ("auth", False, "app.api_keys is missing: run `sisu db migrate`")
    if auth.auth_required(conn, settings):
        return ("auth", True, f"on (SISU_AUTH={settings.api.auth.value})")
    return (
        "auth",
        True,
        "warning: off: anyone who reaches PORT may act; create a key with `sisu keys create`",
    )


def _migrations_check(conn: sa.Connection) -> tuple[str, bool, str]:
    current, head = migrate.current_revision(conn), migrate.head_revision()
    return ("schema app migrated", current == head, f"at {current}, newest {head}")


def _dbos_schema_check(conn: sa.Connection) -> tuple[str, bool, str]:
    present = conn.execute(sa.text("SELECT to_regclass('dbos.workflow_status')")).scalar()
    return ("DBOS system schema", present is not None, "present" if present else "missing")


def _fleet_checks(conn: sa.Connection, settings: Settings) -> list[tuple[str, bool, str]]:
    rows = workers.list_workers(conn, ttl_seconds=settings.queues.heartbeat_ttl_seconds)
    live = [row for row in rows if row.alive]
    listing = ", ".join(f"{w.executor_id} ({w.app_version})" for w in live) or "none"
    parity = any(worker.app_version == settings.topology.app_version for worker in live)
    stuck = workers.queued_runs_without_worker(
        conn, ttl_seconds=settings.queues.heartbeat_ttl_seconds
    )
    return [
        ("live workers", bool(live), listing),
        (
            f"app version parity (DBOS__APPVERSION={settings.topology.app_version})",
            parity,
            "a live worker runs it" if parity else "no live worker runs it: runs stay queued",
        ),
        (
            "no run stuck queued",
            not stuck,
            "none"
            if not stuck
            else ", ".join(f"{n} run(s) of {version}" for version, n in stuck.items()),
        ),
    ]


def _stuck_runs_check(
    conn: sa.Connection, databases: Databases, settings: Settings
) -> tuple[str, bool, str]:
    """The watchdog's own scan: runs no workflow will move again (it fails them in time)."""
    name = "no run stuck without a live workflow"
    client = DBOSClient(
        system_database_engine=databases.engine(system=True, pool_size=1),
        application_name=APP_NAME,
    )
    try:
        stuck = stuck_runs.all_stuck_runs(
            conn, client, grace_seconds=settings.queues.watchdog_grace_seconds
        )
    except sa.exc.DBAPIError as exc:
        return (name, False, f"cannot read DBOS's workflows: {exc.orig}")
    finally:
        client.destroy()
    detail = ", ".join(f"{each.run.id} ({each.summary})" for each in stuck)
    return (name, not stuck, detail or "none")


def _opencode_check(settings: Settings) -> tuple[str, bool, str]:
    health = check_daemon(settings)
    return (f"OpenCode daemon (OC_MODE={settings.planner.oc_mode.value})", health.ok, health.detail)


def _sandbox_check(settings: Settings) -> tuple[str, bool, str]:
    try:
        provider = create_provider(settings)
    except ConfigError as exc:
        return ("sandbox provider", False, str(exc))
    health = provider.health()
    return (f"sandbox provider ({provider.name})", health.ok, health.detail)
