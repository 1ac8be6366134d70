"""The chaos drill behind `sisu chaos`: an API and a worker of our own, a SIGKILL of the
worker mid fan-out, a restart, and the manual's oracles on every round's run."""

from __future__ import annotations

import os
import signal
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa

from sisu_kodo.cli.checks import print_checks
from sisu_kodo.cli.output import console
from sisu_kodo.cli.stack import Child, free_port, spawn_role, terminate, wait_healthy
from sisu_kodo.client import SisuClient
from sisu_kodo.config import Settings
from sisu_kodo.contracts.runs import RunStatus
from sisu_kodo.db import oracles, sandbox_attempts
from sisu_kodo.db.databases import open_databases
from sisu_kodo.deadlines import wait_until
from sisu_kodo.sbx.journal import ExecutionJournal

CHAOS_EXECUTOR = "chaos-worker"


def run_rounds(
    settings: Settings, *, rounds: int, tasks: int, concurrency: int, task_ms: int, timeout: float
) -> bool:
    """Every round's oracles passed."""
    all_passed = True
    with open_databases(settings) as databases:
        journal_dir = databases.settings.sandboxes.mock_journal_dir
        engine = databases.engine(pool_size=2)
        databases.prepare(engine)
        drill = Drill(
            engine, databases.url, databases.settings.topology.resolved_data_dir / "chaos"
        )
        try:
            drill.start()
            with SisuClient(drill.base_url, api_key=databases.settings.api.api_key) as client:
                for number in range(1, rounds + 1):
                    console.rule(f"[bold]chaos round {number}/{rounds}")
                    run_id = drill.round(
                        client,
                        tasks=tasks,
                        concurrency=concurrency,
                        task_ms=task_ms,
                        timeout=timeout,
                    )
                    with engine.connect() as conn:
                        results = oracles.check_run(conn, run_id=run_id)
                        if journal_dir is not None:
                            results.append(journal_check(conn, journal_dir, run_id))
                    all_passed &= print_checks(
                        f"round {number}: run {run_id}",
                        ((r.name, r.passed, r.detail) for r in results),
                    )
        finally:
            drill.stop()
    return all_passed


def journal_check(conn: sa.Connection, journal_dir: Path, run_id: str) -> oracles.OracleResult:
    """Executions counted from inside the (mock) sandbox against the ledger's attempts:
    each attempt executed once, and every execution recorded as an attempt."""
    started = Counter(
        entry["ref"]
        for entry in ExecutionJournal(journal_dir).entries()
        if entry["runId"] == run_id and entry["event"] == "started"
    )
    twice = sum(1 for n in started.values() if n > 1)
    count = sandbox_attempts.account(conn, run_id=run_id)
    return oracles.OracleResult(
        "sandbox executions = recorded attempts (mock journal)",
        twice == 0 and len(started) == count.started == count.recorded,
        f"{sum(started.values())} execution(s) in the journal, {count.started} attempt(s)"
        f" started, {count.recorded} recorded, {twice} executed twice",
    )


@dataclass
class Drill:
    """An API and a worker of our own (on free ports), and the worker we kill."""

    engine: sa.Engine
    database_url: str
    logs: Path
    port: int = field(default_factory=free_port)
    admin_port: int = field(default_factory=free_port)
    children: list[Child] = field(default_factory=list)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "DATABASE_URL": self.database_url,
            "PORT": str(self.port),
            "ADMIN_PORT": str(self.admin_port),
            # The restarted worker must reuse the id: DBOS recovers its own executor's work.
            "SISU_EXECUTOR_ID": CHAOS_EXECUTOR,
        }

    def start(self) -> None:
        api = spawn_role("api", self.env, self.logs / "api.log")
        self.children.append(api)
        self.start_worker()
        wait_healthy(f"{self.base_url}/healthz", child=api, timeout=60)

    def start_worker(self) -> Child:
        worker = spawn_role("worker", self.env, self.logs / "worker.log")
        self.children.append(worker)
        wait_healthy(f"http://127.0.0.1:{self.admin_port}/healthz", child=worker, timeout=60)
        return worker

    def kill_worker(self) -> int:
        worker = next(child for child in self.children if child.name == "worker")
        worker.process.send_signal(signal.SIGKILL)
        worker.process.wait()
        self.children.remove(worker)
        return worker.process.pid

    def stop(self) -> None:
        terminate(self.children)

    def round(
        self, client: SisuClient, *, tasks: int, concurrency: int, task_ms: int, timeout: float
    ) -> str:
        run_id = client.submit(
            "chaos drill",
            partition="chaos",
            steps=tasks,
            concurrency=concurrency,
            constraints={"mockLatencyMs": task_ms},
        ).runId
        client.wait(run_id, lambda r: r.status is RunStatus.WAITING_INPUT, timeout=timeout)
        client.approve_plan(run_id, "chaos")
        self._wait_receipts(run_id, at_least=max(1, tasks // 4), timeout=timeout)
        pid = self.kill_worker()
        console.print(
            f"SIGKILL worker (pid {pid}) with {self._receipts(run_id)}/{tasks} tasks done"
        )
        restarted = self.start_worker()
        console.print(f"restarted worker (pid {restarted.process.pid}); waiting for the run")
        run = client.wait(run_id, lambda r: r.status.terminal, timeout=timeout)
        console.print(f"run {run_id}: {run.status.value}")
        return run_id

    def _receipts(self, run_id: str) -> int:
        with self.engine.connect() as conn:
            return int(
                conn.execute(
                    sa.text("SELECT COUNT(*) FROM app.mock_receipts WHERE run_id = :r"),
                    {"r": run_id},
                ).scalar_one()
            )

    def _wait_receipts(self, run_id: str, *, at_least: int, timeout: float) -> None:
        wait_until(
            lambda: self._receipts(run_id),
            until=lambda done: done >= at_least,
            timeout=timeout,
            what=lambda done: f"run {run_id}: {done} < {at_least} tasks done after {timeout}s",
        )
