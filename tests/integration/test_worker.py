"""The worker's admin server, its identity lease, and fail-closed configuration."""

from __future__ import annotations

import subprocess
import sys

import httpx
import pytest

from sisu_kodo.cli.stack import free_port
from sisu_kodo.client import SisuClient
from tests.fixtures.processes import Stack
from tests.fixtures.runs import run_to_end

pytestmark = pytest.mark.integration


def test_admin_health_and_metrics(client: SisuClient, stack: Stack) -> None:
    run_to_end(client, steps=2)
    health = httpx.get(f"{stack.admin_url}/healthz").json()
    assert health["ok"] and health["executorId"] == "test-worker-1"
    assert health["sandbox"]["provider"] == "mock"
    metrics = httpx.get(f"{stack.admin_url}/metrics")
    assert metrics.status_code == 200
    text = metrics.text
    assert 'sisu_runs{status="succeeded"}' in text
    assert 'sisu_task_attempts{err_code="NONE"}' in text
    assert 'sisu_step_duration_seconds_count{step="ExecuteST"}' in text


def test_two_live_workers_never_share_an_executor_id(stack: Stack) -> None:
    env = stack.env(SISU_EXECUTOR_ID="test-worker-1", ADMIN_PORT=str(free_port()))
    done = subprocess.run(
        [sys.executable, "-m", "sisu_kodo.cli.main", "worker"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "SISU_EXECUTOR_ID='test-worker-1'" in done.stderr
    assert "already holds it" in done.stderr


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("SB_MODE", "cloud"),
        ("PORT", "not-a-port"),
        ("OC_MODE", "maybe"),
        ("OC_STRICT_MODE", "perhaps"),
    ],
)
def test_invalid_configuration_stops_boot_with_one_line(
    stack: Stack, variable: str, value: str
) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "sisu_kodo.cli.main", "worker"],
        env=stack.env(**{variable: value}),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and variable in lines[0] and value in lines[0]
