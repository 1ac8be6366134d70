"""The `sisu` command: demo against a running stack, demo --up on the embedded database,
up/stop by pid file, and db reset."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from sisu_kodo.cli.stack import free_port
from sisu_kodo.db.engine import create_engine
from tests.fixtures.processes import Stack, wait_for
from tests.fixtures.runs import scalar

pytestmark = pytest.mark.integration


def sisu(*args: str, env: dict[str, str], timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sisu_kodo.cli.main", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_demo_against_running_stack(stack: Stack) -> None:
    done = sisu("demo", "--partition", "tenant-cli", env={**stack.env(), "COLUMNS": "200"})
    assert done.returncode == 0, done.stdout + done.stderr
    assert "outcome: succeeded" in done.stdout
    assert done.stdout.count("task-0") == 10  # the 10-task table
    assert "waiting_input" in done.stdout and "plan_card" in done.stdout
    assert f"console: {stack.base_url}/console/runs/run_" in done.stdout


def test_demo_wait_mode_fails_cleanly_when_nobody_approves(stack: Stack) -> None:
    done = sisu("demo", "--wait", "--steps", "1", "--timeout", "2", env=stack.env())
    assert done.returncode == 1
    assert "waiting for a human" in done.stdout
    assert "still waiting_input" in done.stderr


def test_demo_up_on_embedded_postgres(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL",)}
    env.update(
        SISU_DATA_DIR=str(tmp_path / "data"),
        PORT=str(free_port()),
        ADMIN_PORT=str(free_port()),
        COLUMNS="200",
    )
    done = sisu("demo", "--up", env=env, timeout=240)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "sisu is up" in done.stdout and "outcome: succeeded" in done.stdout
    assert f"console: http://127.0.0.1:{env['PORT']}/console/runs/run_" in done.stdout
    assert "stack stopped" in done.stdout
    assert not (tmp_path / "data" / "sisu-up.pid").exists()


def test_up_then_stop(make_stack: Callable[..., Stack], tmp_path: Path) -> None:
    fresh = make_stack()
    env = fresh.env()
    up = subprocess.Popen(
        [sys.executable, "-m", "sisu_kodo.cli.main", "up"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(
            lambda: _workers_alive(fresh.base_url), timeout=90, what="sisu up to serve /healthz"
        )
        pid_file = Path(env["SISU_DATA_DIR"]) / "sisu-up.pid"
        assert pid_file.read_text().strip() == str(up.pid)
        stopped = sisu("stop", env=env, timeout=60)
        assert stopped.returncode == 0 and f"pid {up.pid}" in stopped.stdout
        assert up.wait(timeout=30) == 0
        assert not pid_file.exists()
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"{fresh.base_url}/healthz", timeout=2)
        assert "nothing to stop" in sisu("stop", env=env).stdout
    finally:
        if up.poll() is None:
            up.kill()


def test_up_with_auth_on_waits_for_its_worker(
    make_stack: Callable[..., Stack], tmp_path: Path
) -> None:
    """Once a key exists an anonymous /healthz lists no workers; `sisu up` still knows when
    the API sees a live worker of its version (workerReady) and says it is up."""
    fresh = make_stack()
    env = fresh.env()
    assert sisu("db", "migrate", env=env).returncode == 0
    created = sisu("keys", "create", "--name", "ops", "--role", "admin", "--tenant", "*", env=env)
    assert created.returncode == 0, created.stdout + created.stderr
    printed = tmp_path / "up.out"
    with printed.open("w") as out:
        up = subprocess.Popen(
            [sys.executable, "-m", "sisu_kodo.cli.main", "up"],
            env={**env, "COLUMNS": "200"},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for(
            lambda: "sisu is up" in printed.read_text() or up.poll() is not None,
            timeout=120,
            what="sisu up to say it is up",
        )
        assert "sisu is up" in printed.read_text(), printed.read_text()[-3000:]
        anonymous = httpx.get(f"{fresh.base_url}/healthz", timeout=5).json()
        assert anonymous["workerReady"] is True and "workers" not in anonymous
        assert sisu("stop", env=env, timeout=60).returncode == 0
        assert up.wait(timeout=30) == 0
    finally:
        if up.poll() is None:
            up.kill()


def _workers_alive(base: str) -> bool:
    try:
        body = httpx.get(f"{base}/healthz", timeout=2).json()
    except httpx.HTTPError:
        return False
    return any(worker["alive"] for worker in body.get("workers", []))


def test_db_reset_recreates_schema_and_seeds(make_stack: Callable[..., Stack]) -> None:
    fresh = make_stack()
    env = fresh.env()
    assert sisu("db", "migrate", env=env).returncode == 0
    printed = sisu("db", "url", env=env).stdout.strip()
    assert printed.startswith("postgresql://") and printed.endswith(
        fresh.database_url.rsplit("/", 1)[1]
    )
    engine = create_engine(fresh.database_url, pool_size=1)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql("INSERT INTO app.intents (id, goal) VALUES ('it_x', 'g')")
        done = sisu("db", "reset", env=env)
        assert done.returncode == 0, done.stderr
        assert scalar(engine, "SELECT COUNT(*) FROM app.intents") == 0
        assert scalar(engine, "SELECT COUNT(*) FROM app.recipes") == 2
        assert scalar(engine, "SELECT to_regclass('dbos.workflow_status')::text") is not None
        assert sisu("db", "sys-reset", env=env).returncode == 0
        assert scalar(engine, "SELECT to_regclass('dbos.workflow_status')::text") is None
    finally:
        engine.dispose()
