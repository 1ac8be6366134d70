"""The operator's CLI over the HTTP API against real processes: the manual's flow by CLI
(the README's lines, run verbatim: no curl, no jq), --json for scripts, the exit codes,
and keys: SISU_API_KEY carries the caller, its roles and its tenants.

One stack on its own database serves the module, with auth on from its first key.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sisu_kodo.cli.remote import Exit
from sisu_kodo.db.engine import create_engine
from tests.fixtures.auth import make_key
from tests.fixtures.postgres import TestDatabases
from tests.fixtures.processes import Stack, running

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
TENANT = "tenant-alpha"


@pytest.fixture(scope="module")
def cli_stack(
    databases: TestDatabases, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    with running(Stack(databases.create(), tmp_path_factory.mktemp("runs-cli"))) as own:
        yield own


@pytest.fixture(scope="module")
def keys(cli_stack: Stack) -> dict[str, str]:
    engine = create_engine(cli_stack.database_url, pool_size=1)
    try:
        with engine.begin() as conn:
            return {
                "submitter": make_key(conn, "submitter", tenants=(TENANT,), name="sam"),
                "approver": make_key(conn, "approver", tenants=(TENANT,), name="ada"),
                "operator": make_key(conn, "operator", tenants=(TENANT,), name="ops"),
                "viewer": make_key(conn, "viewer", tenants=(TENANT,), name="vi"),
                "outsider": make_key(conn, "viewer", tenants=("tenant-beta",), name="out"),
            }
    finally:
        engine.dispose()


def cli_env(stack: Stack, key: str | None) -> dict[str, str]:
    env = stack.env(COLUMNS="250")
    env.pop("SISU_API_KEY", None)
    if key:
        env["SISU_API_KEY"] = key
    # `sisu` as an operator types it: the console script of this interpreter's environment.
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def sisu(
    stack: Stack, key: str | None, *args: str, timeout: float = 180
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sisu_kodo.cli.main", *args],
        env=cli_env(stack, key),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def ok(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 0, f"exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done.stdout


def as_json(done: subprocess.CompletedProcess[str]) -> Any:
    return json.loads(ok(done))


def readme_cli_flow() -> str:
    """The README's "flow by CLI" block, as written there."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("### The flow by CLI", 1)[1]
    return section.split("```bash\n", 1)[1].split("```", 1)[0]


def test_the_readmes_flow_by_cli_runs_verbatim_without_curl_or_jq(
    stack: Stack, tmp_path: Path
) -> None:
    """On the session's stack (auth off on loopback, as the README's flow assumes)."""
    script = tmp_path / "flow.sh"
    script.write_text("set -euo pipefail\n" + readme_cli_flow() + 'echo "RUN=$R"\n')
    done = subprocess.run(
        ["bash", str(script)],
        env=cli_env(stack, None),
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
    )
    out = done.stdout
    assert done.returncode == 0, out + done.stderr
    run_id = out.rsplit("RUN=", 1)[1].strip()
    assert "waiting_input" in out and "APPROVE_PLAN" in out and "DecideST" in out
    assert "plan ready" in done.stderr and f"run {run_id}: succeeded" in done.stderr
    assert "plan.approved" in out and "OK: " in out  # the events, then task-001's stdout
    assert out.count(run_id) >= 2  # `sisu run`'s header and `sisu runs`'s row
    view = as_json(sisu(stack, None, "run", run_id, "--json"))
    assert view["run"]["status"] == "succeeded" and view["tasks"]["total"] == 10
    assert {task["status"] for task in view["tasks"]["tasks"]} == {"succeeded"}


def test_the_flow_by_cli_with_keys(cli_stack: Stack, keys: dict[str, str]) -> None:
    """A submitter's key starts, an approver's approves (separation of duties)."""
    run_id = ok(sisu(cli_stack, keys["submitter"], "submit", "keyed", "--wait")).strip()
    approved = sisu(cli_stack, keys["approver"], "approve", run_id, "--wait")
    assert approved.returncode == 0 and "succeeded" in approved.stderr, approved.stderr
    view = as_json(sisu(cli_stack, keys["viewer"], "run", run_id, "--json"))
    approvals = view["run"]["approvals"]["approvers"]
    assert [vote["principal"]["name"] for vote in approvals] == ["ada"]
    assert view["run"]["startedBy"]["name"] == "sam"
    followed = ok(sisu(cli_stack, keys["viewer"], "logs", run_id, "--follow"))
    assert "plan.approved" in followed and "run.succeeded" in followed  # ends with the run


def test_json_answers_for_scripts(cli_stack: Stack, keys: dict[str, str]) -> None:
    started = as_json(
        sisu(cli_stack, keys["submitter"], "submit", "json flow", "--steps", "2", "--json")
    )
    run_id = started["runId"]
    assert started["status"] == "queued"  # the key's one tenant, without --tenant
    listed = as_json(sisu(cli_stack, keys["viewer"], "runs", "--json", "--limit", "200"))
    [item] = [item for item in listed["items"] if item["runId"] == run_id]
    assert item["tenant"] == TENANT and item["startedBy"]["name"] == "sam"
    events = ok(sisu(cli_stack, keys["viewer"], "logs", run_id, "--json")).splitlines()
    assert json.loads(events[0])["type"] == "run.queued"  # one JSON event per line
    queues = as_json(sisu(cli_stack, keys["viewer"], "queues", "--json"))
    assert {queue["name"] for queue in queues["queues"]} == {"intentQ", "sbxQ"}
    workers = as_json(sisu(cli_stack, keys["viewer"], "workers", "--json"))
    assert workers["live"] >= 1 and workers["workers"][0]["executorId"] == "test-worker-1"
    table = ok(sisu(cli_stack, keys["viewer"], "workers"))
    assert "test-worker-1" in table and "live" in table


def test_failure_retry_reject_and_cancel(cli_stack: Stack, keys: dict[str, str]) -> None:
    failing = ok(
        sisu(cli_stack, keys["submitter"], "submit", "cli: fail me", "--steps", "2", "--wait")
    ).strip()
    approved = sisu(cli_stack, keys["approver"], "approve", failing, "--wait")
    assert approved.returncode == Exit.RUN_NOT_SUCCEEDED, approved.stderr
    assert "retries_exceeded" in approved.stderr
    tasks = as_json(sisu(cli_stack, keys["viewer"], "run", failing, "--json"))["tasks"]["tasks"]
    [name] = [task["name"] for task in tasks if task["status"] == "failed"]
    failed = as_json(sisu(cli_stack, keys["viewer"], "logs", failing, "--task", name, "--json"))
    assert failed["task"]["errCode"] == "CMD_NONZERO" and failed["task"]["status"] == "failed"
    retried = as_json(sisu(cli_stack, keys["operator"], "retry", failing, "--json"))
    assert retried["fromStep"] == "ExecuteST" and retried["retryCount"] == 1

    gated = ok(sisu(cli_stack, keys["submitter"], "submit", "to reject", "--wait")).strip()
    rejected = ok(sisu(cli_stack, keys["approver"], "reject", gated, "--reason", "too broad"))
    assert "failed" in rejected

    queued = ok(sisu(cli_stack, keys["submitter"], "submit", "to cancel")).strip()
    assert "canceled" in ok(sisu(cli_stack, keys["operator"], "cancel", queued))


def test_exit_codes(cli_stack: Stack, keys: dict[str, str]) -> None:
    run_id = ok(sisu(cli_stack, keys["submitter"], "submit", "exit codes", "--wait")).strip()
    assert sisu(cli_stack, None, "runs").returncode == Exit.DENIED  # no key
    assert sisu(cli_stack, keys["viewer"], "cancel", run_id).returncode == Exit.DENIED
    own = sisu(cli_stack, keys["submitter"], "approve", run_id)  # not an approver
    assert own.returncode == Exit.DENIED and "forbidden" in own.stderr
    hidden = sisu(cli_stack, keys["outsider"], "run", run_id)  # another tenant's run
    assert hidden.returncode == Exit.NOT_FOUND and "not_found" in hidden.stderr
    assert sisu(cli_stack, keys["viewer"], "run", "run_nope").returncode == Exit.NOT_FOUND
    missing = sisu(cli_stack, keys["viewer"], "logs", run_id, "--task", "no-such-task")
    assert missing.returncode == Exit.NOT_FOUND
    early = sisu(cli_stack, keys["operator"], "retry", run_id)  # waiting at the gate
    assert early.returncode == Exit.REFUSED and "illegal_state" in early.stderr
    assert sisu(cli_stack, keys["viewer"], "runs", "--cursor", "!!").returncode == Exit.REFUSED
    slow = sisu(cli_stack, keys["submitter"], "submit", "slow", "--wait", "--timeout", "0")
    assert slow.returncode == Exit.TIMED_OUT
    down = cli_env(cli_stack, keys["viewer"]) | {"PORT": "1"}
    unreachable = subprocess.run(
        [sys.executable, "-m", "sisu_kodo.cli.main", "runs"],
        env=down,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert unreachable.returncode == Exit.UNAVAILABLE and "unreachable" in unreachable.stderr
    outsiders = as_json(sisu(cli_stack, keys["outsider"], "runs", "--json"))
    assert outsiders["items"] == []  # tenant-beta sees none of tenant-alpha's runs
