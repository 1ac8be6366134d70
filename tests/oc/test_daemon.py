"""`sisu oc daemon start|health|stop`, and `sisu up` starting OpenCode in live mode."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from sisu_kodo.cli.stack import free_port
from sisu_kodo.client import SisuClient
from sisu_kodo.oc.daemon import DaemonPaths
from tests.fixtures.postgres import TestDatabases
from tests.fixtures.processes import wait_for
from tests.fixtures.runs import run_to_gate
from tests.oc.conftest import OpenCodeServer

pytestmark = pytest.mark.integration


def own_daemon_env(opencode: OpenCodeServer, data_dir: Path) -> dict[str, str]:
    """A second daemon of our own: its port, its data dir, a password it generates."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OC_", "SISU_", "DATABASE"))}
    # A fresh data dir boots in about 2 s on a quiet machine; a loaded one can take more
    # than the 10 s the other tests allow (sisu up then exits 2, as once in CI).
    env.update(
        opencode.env(
            OC_SERVER_PORT=str(free_port()),
            SISU_DATA_DIR=str(data_dir),
            OC_STARTUP_TIMEOUT_SECONDS="60",
        )
    )
    del env["OC_BASE_URL"], env["OC_SERVER_PASSWORD"]
    return env


def sisu(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sisu_kodo.cli.main", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
    )


def test_daemon_start_health_stop(opencode: OpenCodeServer, tmp_path: Path) -> None:
    env = own_daemon_env(opencode, tmp_path / "data")
    paths = DaemonPaths(tmp_path / "data" / "opencode")
    try:
        started = sisu(env, "oc", "daemon", "start")
        assert started.returncode == 0, started.stderr
        assert "OpenCode started" in started.stdout
        assert paths.password_file.stat().st_mode & 0o077 == 0
        healthy = sisu(env, "oc", "daemon", "health")
        assert healthy.returncode == 0, healthy.stdout
        assert "healthy, version 1.18.33" in healthy.stdout
        again = sisu(env, "oc", "daemon", "start")
        assert "already running" in again.stdout
    finally:
        stopped = sisu(env, "oc", "daemon", "stop")
    assert "stopped OpenCode" in stopped.stdout
    assert not paths.pid_file.exists()
    down = sisu(env, "oc", "daemon", "health")
    assert down.returncode == 1


def test_sisu_up_starts_opencode_in_live_mode(
    opencode: OpenCodeServer, databases: TestDatabases, tmp_path: Path
) -> None:
    env = own_daemon_env(opencode, tmp_path / "data")
    port, admin_port = free_port(), free_port()
    env.update(DATABASE_URL=databases.create(), PORT=str(port), ADMIN_PORT=str(admin_port))
    paths = DaemonPaths(tmp_path / "data" / "opencode")
    output = tmp_path / "sisu-up.log"
    with output.open("wb") as log:
        up = subprocess.Popen(
            [sys.executable, "-m", "sisu_kodo.cli.main", "up"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        base = f"http://127.0.0.1:{port}"
        wait_for(lambda: _up(base, up, output), timeout=90, what="sisu up")
        assert paths.pid_file.exists()
        with SisuClient(base) as client:
            run = run_to_gate(client, goal="plan me live", steps=2)
        compile_step = next(s for s in run.steps if s.stepId == "CompileST")
        assert compile_step.output is not None
        assert compile_step.output["planSource"] == "live"
    finally:
        up.send_signal(signal.SIGTERM)
        up.wait(timeout=60)
    assert not paths.pid_file.exists()


def _up(base: str, process: subprocess.Popen[bytes], output: Path) -> bool:
    """Healthy with a live worker; a `sisu up` that died fails with what it printed."""
    if process.poll() is not None:
        logs = sorted(output.parent.glob("data/logs/*.log"))
        printed = [f"--- {path.name}\n{path.read_text()[-3000:]}" for path in [output, *logs]]
        pytest.fail(f"sisu up exited with {process.returncode}\n" + "\n".join(printed))
    try:
        response = httpx.get(f"{base}/healthz", timeout=2)
    except httpx.HTTPError:
        return False
    return response.status_code == 200 and any(w["alive"] for w in response.json()["workers"])
