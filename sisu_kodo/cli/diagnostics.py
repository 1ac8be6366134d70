"""The checks behind `sisu doctor` and `sisu oracle`: the ledger, DBOS's system schema, the
fleet's heartbeats, OpenCode and the sandbox provider, read directly."""

from __future__ import annotations

import sqlalchemy as sa
from dbos import DBOSClient

from sisu_kodo import auth
from sisu_kodo.config import APP_NAME, ConfigError, Settings
from sisu_kodo.db import migrate, oracles, stuck_runs, workers
from sisu_kodo.db.databases import Databases, open_databases
from sisu_kodo.oc.health import check_daemon
from sisu_kodo.sbx import create_provider

Check = tuple[str, bool, str]


def oracle_results(
    settings: Settings, *, run_id: str, expect_success: bool
) -> list[oracles.OracleResult]:
    with (
        open_databases(settings, start=False) as databases,
        databases.engine(pool_size=1).connect() as conn,
    ):
        return oracles.check_run(conn, run_id=run_id, expect_success=expect_success)


def doctor_checks(settings: Settings) -> list[Check]:
    return [*_database_checks(settings), _opencode_check(settings), _sandbox_check(settings)]


def _database_checks(settings: Settings) -> list[Check]:
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


def _auth_check(conn: sa.Connection, settings: Settings) -> Check:
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


def _migrations_check(conn: sa.Connection) -> Check:
    current, head = migrate.current_revision(conn), migrate.head_revision()
    return ("schema app migrated", current == head, f"at {current}, newest {head}")


def _dbos_schema_check(conn: sa.Connection) -> Check:
    present = conn.execute(sa.text("SELECT to_regclass('dbos.workflow_status')")).scalar()
    return ("DBOS system schema", present is not None, "present" if present else "missing")


def _fleet_checks(conn: sa.Connection, settings: Settings) -> list[Check]:
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


def _stuck_runs_check(conn: sa.Connection, databases: Databases, settings: Settings) -> Check:
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


def _opencode_check(settings: Settings) -> Check:
    health = check_daemon(settings)
    return (f"OpenCode daemon (OC_MODE={settings.planner.oc_mode.value})", health.ok, health.detail)


def _sandbox_check(settings: Settings) -> Check:
    try:
        provider = create_provider(settings)
    except ConfigError as exc:
        return ("sandbox provider", False, str(exc))
    health = provider.health()
    return (f"sandbox provider ({provider.name})", health.ok, health.detail)
