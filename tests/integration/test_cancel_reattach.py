"""Cancel stops commands, and a crash never re-executes one, on the live local provider
and on the mock's journal: counted from inside the sandbox and through /proc.

Long commands come from a recorded planner exchange (a replay fixture written here), so
each task runs `sleep <marker>` with a marker unique to the test, findable in /proc.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from sisu_kodo.client import SisuClient
from sisu_kodo.contracts.runs import RunStatus
from sisu_kodo.db import oracles, sandbox_attempts
from sisu_kodo.db.engine import create_engine
from sisu_kodo.oc.fixtures import FixtureStore
from sisu_kodo.oc.port import CompileRequest
from sisu_kodo.oc.prompts import plan_ask
from tests.fixtures.processes import Stack, wait_for
from tests.fixtures.runs import rows, run_to_gate, scalar, wait_status
from tests.sbx.conftest import commands_running, wait_commands_gone
from tests.sbx.e2b_fake import GOOD_KEY, FakeE2B, serve_fake

pytestmark = pytest.mark.integration

TASKS = 3
CHAOS_ARGS = ("--rounds", "10", "--tasks", "8", "--concurrency", "4", "--task-ms", "600")


@pytest.fixture
def host_dir() -> Iterator[Path]:
    """A folder the sandbox uid can reach (pytest's tmp_path is 0700): the work root of
    the local sandboxes and, for process isolation, where commands count themselves."""
    root = Path(tempfile.mkdtemp(prefix="sisu-p1-"))
    root.chmod(0o711)
    (root / "work").mkdir(mode=0o711)
    counts = root / "counts"
    counts.mkdir()
    counts.chmod(0o777)  # written by the sandbox uid
    yield root
    shutil.rmtree(root, ignore_errors=True)


def record_plan(fixtures: Path, goal: str, commands: list[str]) -> None:
    """Store the planner's answer for `goal` as a replay fixture: these tasks, these commands."""
    ask = plan_ask(
        CompileRequest(runId="any", goal=goal, inputs={}, constraints={}, taskCount=len(commands))
    )
    reply = {
        "goal": goal,
        "design": ["one long command per task"],
        "tasks": [
            {"name": f"long-{n}", "command": command, "purpose": "take a while"}
            for n, command in enumerate(commands, start=1)
        ],
        "files": [],
        "risks": [],
        "tests": [],
    }
    FixtureStore(fixtures).write(ask, reply=reply, model="test", tokens={})


def marker() -> str:
    """A `sleep` argument unique to this test, findable in /proc (about 40 s)."""
    return f"40.{os.getpid()}{time.monotonic_ns() % 100_000:05d}"


def live_local(make_stack: Callable[..., Stack], host: Path, **env: str) -> Stack:
    """A stack on live sandboxes (local unless `env` says otherwise), planning by replay."""
    return make_stack(
        **{
            "SB_MODE": "live",
            "SBX_PROVIDER": "local",
            "SBX_LOCAL_WORK_ROOT": str(host / "work"),
            "OC_MODE": "replay",
            "OC_FIXTURES_DIR": str(host / "fixtures"),
            **env,
        }
    )


def started_attempts(engine: sa.Engine, run_id: str) -> int:
    return int(scalar(engine, "SELECT COUNT(*) FROM app.sbx_attempts WHERE run_id = :r", r=run_id))


def wait_running(engine: sa.Engine, run_id: str, command: str) -> None:
    """Until every task's command runs (seen in /proc) and is recorded as started."""
    wait_for(
        lambda: (
            len(commands_running(command)) >= TASKS and started_attempts(engine, run_id) == TASKS
        ),
        timeout=60,
        what="every command running and recorded as started",
    )


def account(engine: sa.Engine, run_id: str) -> sandbox_attempts.AttemptAccount:
    with engine.connect() as conn:
        return sandbox_attempts.account(conn, run_id=run_id)


def check_oracles(engine: sa.Engine, run_id: str, **kwargs: Any) -> None:
    with engine.connect() as conn:
        results = oracles.check_run(conn, run_id=run_id, **kwargs)
    failed = [(r.name, r.detail) for r in results if not r.passed]
    assert not failed


@pytest.fixture
def engine_of() -> Iterator[Callable[[Stack], sa.Engine]]:
    made: list[sa.Engine] = []

    def make(stack: Stack) -> sa.Engine:
        made.append(create_engine(stack.database_url, pool_size=1))
        return made[-1]

    yield make
    for engine in made:
        engine.dispose()


def test_cancel_kills_live_commands_and_records_no_success(
    make_stack: Callable[..., Stack], host_dir: Path, engine_of: Callable[[Stack], sa.Engine]
) -> None:
    sleep = marker()
    goal = f"cancel long commands {sleep}"
    record_plan(host_dir / "fixtures", goal, [f"sleep {sleep}; echo finished"] * TASKS)
    stack = live_local(make_stack, host_dir)
    stack.start_worker()
    stack.start_api()
    engine = engine_of(stack)
    with SisuClient(stack.base_url) as client:
        gate = run_to_gate(client, goal=goal, steps=TASKS, concurrency=TASKS)
        client.approve_plan(gate.runId, "ops-lead")
        wait_running(engine, gate.runId, f"sleep {sleep}")
        canceled_at = time.monotonic()
        assert client.cancel(gate.runId).status is RunStatus.CANCELED
        wait_commands_gone(f"sleep {sleep}", timeout=5)
        assert time.monotonic() - canceled_at < 5
        wait_for(
            lambda: account(engine, gate.runId).unrecorded == 0,
            timeout=30,
            what="every started attempt to have its outcome",
        )
        assert client.get_run(gate.runId).status is RunStatus.CANCELED
    outcomes = rows(
        engine, "SELECT err_code, attempt FROM app.sbx_runs WHERE run_id = :r", r=gate.runId
    )
    assert sorted(outcomes) == [("CANCELED", 1)] * TASKS
    receipts = scalar(
        engine, "SELECT COUNT(*) FROM app.mock_receipts WHERE run_id = :r", r=gate.runId
    )
    assert receipts == 0
    check_oracles(engine, gate.runId, expect_success=False)


@pytest.fixture(scope="module")
def e2b_fake() -> Iterator[tuple[FakeE2B, str]]:
    with serve_fake() as served:
        yield served


def e2b_env(url: str) -> dict[str, str]:
    return {
        "SBX_PROVIDER": "e2b",
        "E2B_API_KEY": GOOD_KEY,
        "E2B_API_URL": url,
        "E2B_SANDBOX_URL": url,
        "E2B_HTTP_VERSION": "1.1",
    }


@pytest.mark.parametrize("provider", ["local", "e2b"])
def test_killed_worker_reattaches_and_each_command_runs_once(
    make_stack: Callable[..., Stack],
    host_dir: Path,
    engine_of: Callable[[Stack], sa.Engine],
    e2b_fake: tuple[FakeE2B, str],
    provider: str,
) -> None:
    """Local with process isolation, or the E2B fake (commands run on the host): each
    command counts itself in a host folder."""
    sleep = marker().replace("40.", "12.")  # long enough to outlive the restart
    goal = f"survive a crash {sleep}"
    counts = host_dir / "counts"
    commands = [
        f"echo run >> {counts}/task-{n}; sleep {sleep}; echo done" for n in range(1, TASKS + 1)
    ]
    record_plan(host_dir / "fixtures", goal, commands)
    env = e2b_env(e2b_fake[1]) if provider == "e2b" else {"SBX_LOCAL_ISOLATION": "process"}
    stack = live_local(make_stack, host_dir, **env)
    worker = stack.start_worker("crash-worker")
    stack.start_api()
    engine = engine_of(stack)
    with SisuClient(stack.base_url) as client:
        gate = run_to_gate(client, goal=goal, steps=TASKS, concurrency=TASKS)
        client.approve_plan(gate.runId, "ops-lead")
        wait_running(engine, gate.runId, f"sleep {sleep}")
        worker.kill()
        assert len(commands_running(f"sleep {sleep}")) >= TASKS, "sandboxes outlive the worker"
        stack.start_worker("crash-worker")  # same executor id: DBOS recovers its workflows
        done = wait_status(client, gate.runId, RunStatus.SUCCEEDED, RunStatus.FAILED, timeout=120)
        assert done.status is RunStatus.SUCCEEDED, done.error
    for n in range(1, TASKS + 1):
        assert (counts / f"task-{n}").read_text() == "run\n", f"task {n} executed once"
    outcomes = rows(
        engine, "SELECT err_code, attempt FROM app.sbx_runs WHERE run_id = :r", r=gate.runId
    )
    assert sorted(outcomes) == [("NONE", 1)] * TASKS, "re-attached, not retried"
    receipts = rows(
        engine, "SELECT seen_count FROM app.mock_receipts WHERE run_id = :r", r=gate.runId
    )
    assert [n for (n,) in receipts] == [1] * TASKS
    check_oracles(engine, gate.runId)


@pytest.mark.timeout(1500)  # ten worker restarts, each waited for until healthy
def test_ten_kills_mid_fan_out_execute_each_attempt_once(
    make_stack: Callable[..., Stack], tmp_path: Path
) -> None:
    """`sisu chaos` with the mock's journal: ten rounds, one SIGKILL mid fan-out each;
    executions counted inside the sandbox equal the attempts recorded, receipts once."""
    fresh = make_stack(SBX_MOCK_JOURNAL_DIR=str(tmp_path / "journal"))
    done = subprocess.run(
        [sys.executable, "-m", "sisu_kodo.cli.main", "chaos", *CHAOS_ARGS],
        env={**fresh.env(), "COLUMNS": "250"},
        capture_output=True,
        text=True,
        timeout=1400,
    )
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-3000:]
    assert done.stdout.count("SIGKILL worker") == 10 and "FAIL" not in done.stdout
    assert done.stdout.count("sandbox executions = recorded attempts") == 10


LIVE_KILLS = 10
LIVE_TASKS = 40  # a kill after every three attempts started: the tenth leaves work to do
LIVE_CONCURRENCY = 3


@pytest.mark.timeout(1500)  # ten worker restarts, each waited for until healthy
def test_ten_kills_mid_fan_out_on_live_local_execute_each_attempt_once(
    make_stack: Callable[..., Stack], host_dir: Path, engine_of: Callable[[Stack], sa.Engine]
) -> None:
    """Live local sandboxes (process isolation, so commands can count themselves in a host
    folder): ten SIGKILLs of the worker mid fan-out, each followed by a restart under the
    same executor id. Executions counted inside the sandboxes equal the attempts recorded,
    task by task, and every receipt is seen once."""
    sleep = marker().replace("40.", "2.")
    goal = f"ten kills on live sandboxes {sleep}"
    counts = host_dir / "counts"
    commands = [
        f"echo run >> {counts}/long-{n}; sleep {sleep}; echo done" for n in range(1, LIVE_TASKS + 1)
    ]
    record_plan(host_dir / "fixtures", goal, commands)
    stack = live_local(make_stack, host_dir, SBX_LOCAL_ISOLATION="process")
    worker = stack.start_worker("kill-worker")
    stack.start_api()
    engine = engine_of(stack)
    with SisuClient(stack.base_url) as client:
        gate = run_to_gate(client, goal=goal, steps=LIVE_TASKS, concurrency=LIVE_CONCURRENCY)
        client.approve_plan(gate.runId, "ops-lead")
        outlived: list[int] = []  # sandbox commands still running just after each kill
        for kill in range(1, LIVE_KILLS + 1):
            wanted = LIVE_CONCURRENCY * kill

            def in_flight(wanted: int = wanted) -> bool:
                return (
                    started_attempts(engine, gate.runId) >= wanted
                    and commands_running(f"sleep {sleep}") != []
                )

            wait_for(
                in_flight,
                timeout=120,
                what=f"attempts in flight before kill {kill}",
            )
            worker.kill()
            outlived.append(len(commands_running(f"sleep {sleep}")))
            worker = stack.start_worker("kill-worker")  # same id: DBOS recovers its work
        assert all(outlived), f"each kill left commands in flight: {outlived}"
        done = wait_status(client, gate.runId, RunStatus.SUCCEEDED, RunStatus.FAILED, timeout=300)
        assert done.status is RunStatus.SUCCEEDED, done.error
    attempts = {
        str(name): int(count)
        for name, count in rows(
            engine,
            "SELECT t.name, COUNT(*) FROM app.sbx_attempts a JOIN app.run_tasks t"
            " ON t.run_id = a.run_id AND t.task_key = a.task_key"
            " WHERE a.run_id = :r GROUP BY t.name",
            r=gate.runId,
        )
    }
    executions = {path.name: len(path.read_text().splitlines()) for path in counts.iterdir()}
    assert executions == attempts, "every execution inside a sandbox is a recorded attempt"
    assert len(executions) == LIVE_TASKS
    outcomes = scalar(
        engine,
        "SELECT COUNT(*) FROM app.sbx_runs WHERE run_id = :r AND err_code = 'NONE'",
        r=gate.runId,
    )
    assert outcomes == LIVE_TASKS, "one success per task"
    receipts = rows(
        engine, "SELECT seen_count FROM app.mock_receipts WHERE run_id = :r", r=gate.runId
    )
    assert [n for (n,) in receipts] == [1] * LIVE_TASKS, "duplicate receipts: none"
    with engine.connect() as conn:
        assert sandbox_attempts.account(conn, run_id=gate.runId).unrecorded == 0
    check_oracles(engine, gate.runId)
