"""`sisu oracle`, `sisu doctor`, `sisu chaos`, and the mise tasks that call them."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from collections.abc import Callable
from pathlib import Path

import pytest

from sisu_kodo.client import SisuClient
from tests.fixtures.processes import Stack
from tests.fixtures.runs import run_to_end

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def sisu(*args: str, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sisu_kodo.cli.main", *args],
        env={**env, "COLUMNS": "250"},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_oracle_passes_for_a_succeeded_run(client: SisuClient, stack: Stack) -> None:
    run = run_to_end(client, steps=3)
    done = sisu("oracle", run.runId, env=stack.env())
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("PASS") == 8 and "FAIL" not in done.stdout


def test_oracle_fails_for_a_failed_run(client: SisuClient, stack: Stack) -> None:
    run = run_to_end(client, goal="oracle: fail me", steps=2)
    done = sisu("oracle", run.runId, env=stack.env())
    assert done.returncode == 1
    assert "FAIL" in done.stdout and "retries_exceeded" in done.stdout
    assert sisu("oracle", run.runId, "--any-outcome", env=stack.env()).returncode == 0


def test_doctor_is_green_on_a_healthy_stack(stack: Stack) -> None:
    done = sisu("doctor", env=stack.env())
    assert done.returncode == 0, done.stdout
    assert "test-worker-1 (v1)" in done.stdout


def test_chaos_round_passes_every_oracle(make_stack: Callable[..., Stack]) -> None:
    fresh = make_stack()
    done = sisu(
        "chaos", "--rounds", "1", "--tasks", "8", "--task-ms", "300", env=fresh.env(), timeout=300
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SIGKILL worker" in done.stdout and "all rounds passed" in done.stdout
    assert "FAIL" not in done.stdout


def test_mise_tasks_have_the_manuals_names_and_call_the_cli(stack: Stack) -> None:
    tasks = tomllib.loads((ROOT / "mise.toml").read_text())["tasks"]
    for name in ("stop", "db:reset", "db:sys:reset", "wf:intent:chaos", "oc:daemon:health"):
        command = tasks[name]["run"].split()
        assert command[0] == "sisu", name
        assert sisu(*command[1:], "--help", env=stack.env()).returncode == 0, name
