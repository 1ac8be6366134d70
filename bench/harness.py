"""Shared benchmark harness: a fresh database, real worker/API processes, JSON results.

Benchmarks are programs, not tests: each prints one JSON document and writes it to
bench/results/<name>.json. The test suite runs each with a tiny N only to prove the
harness works (tests/bench). PostgreSQL: the server in SISU_BENCH_DATABASE_URL, or an
embedded one; every benchmark creates its own database and drops it afterwards.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `python bench/x.py` as well as `python -m bench.x`
    sys.path.insert(0, str(ROOT))

from sisu_kodo.client import SisuClient  # noqa: E402
from sisu_kodo.contracts.runs import RunStatus  # noqa: E402
from sisu_kodo.db.embedded import EmbeddedPostgres  # noqa: E402
from sisu_kodo.db.engine import create_engine  # noqa: E402
from sisu_kodo.deadlines import wait_until  # noqa: E402
from tests.fixtures.postgres import TestDatabases  # noqa: E402
from tests.fixtures.processes import Role, Stack  # noqa: E402
from tests.fixtures.runs import start_run  # noqa: E402

RESULTS = Path(os.environ.get("SISU_BENCH_RESULTS", ROOT / "bench" / "results"))

# Throughput settings: no simulated work, fast polling, room for a 64-wide window.
BENCH_ENV = {
    "SBX_MOCK_LATENCY_MS": "0",
    "SISU_QUEUE_POLL_SECONDS": "0.1",
    "SISU_SBX_PARTITION_CONCURRENCY": "64",
    "SISU_SBX_WORKER_CONCURRENCY": "64",
    "SISU_INTENT_PARTITION_CONCURRENCY": "4",
    "SISU_HEARTBEAT_SECONDS": "1",
    "SISU_HEARTBEAT_TTL_SECONDS": "4",
}


@contextmanager
def postgres_server() -> Iterator[str]:
    configured = os.environ.get("SISU_BENCH_DATABASE_URL")
    if configured:
        yield configured
        return
    embedded = EmbeddedPostgres(Path(tempfile.mkdtemp(prefix="sisu-bench-pg-")))
    try:
        yield embedded.start()
    finally:
        embedded.stop()


@dataclass
class Bench:
    stack: Stack
    engine: sa.Engine
    client: SisuClient
    databases: TestDatabases

    def fresh_database(self) -> str:
        return self.databases.create()


@contextmanager
def bench_stack(*, workers: int = 1, **env: str) -> Iterator[Bench]:
    """A database of its own, `workers` worker processes and one API process."""
    with postgres_server() as server:
        databases = TestDatabases(server)
        workdir = Path(tempfile.mkdtemp(prefix="sisu-bench-"))
        stack = Stack(databases.create(), workdir, extra_env={**BENCH_ENV, **env})
        engine = create_engine(stack.database_url, pool_size=2)
        try:
            for number in range(1, workers + 1):
                admin = {} if number == 1 else {"ADMIN_PORT": str(_port())}
                stack.start_worker(f"worker-{number}", **admin)
            stack.start_api()
            with SisuClient(stack.base_url, timeout=120) as client:
                yield Bench(stack, engine, client, databases)
        finally:
            stack.stop()
            engine.dispose()
            databases.drop_all()


def _port() -> int:
    from sisu_kodo.cli.stack import free_port

    return free_port()


def start_to_gate(
    client: SisuClient,
    *,
    tasks: int,
    concurrency: int = 64,
    partition: str = "bench",
    goal: str = "benchmark",
    constraints: dict[str, Any] | None = None,
    timeout: float = 600,
) -> str:
    run_id = start_run(
        client,
        goal=goal,
        steps=tasks,
        concurrency=concurrency,
        partition=partition,
        constraints=constraints,
    )
    client.wait(run_id, lambda r: r.status is RunStatus.WAITING_INPUT, timeout=timeout, poll=0.02)
    return run_id


def wait_terminal(engine: sa.Engine, run_id: str, *, timeout: float = 1800) -> RunStatus:
    """Poll the run's status in the ledger: cheap, so the measurement does not load the API."""
    query = sa.text("SELECT status FROM app.runs WHERE id = :r")

    def status() -> RunStatus:
        with engine.connect() as conn:
            return RunStatus(conn.execute(query, {"r": run_id}).scalar_one())

    return wait_until(
        status,
        until=lambda current: current.terminal,
        timeout=timeout,
        interval=0.01,
        what=lambda current: f"run {run_id} still {current.value} after {timeout}s",
    )


def worker_role(bench: Bench, number: int = 1) -> Role:
    workers = [role for role in bench.stack.roles if role.role == "worker"]
    return workers[number - 1]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def spread(values: list[float]) -> dict[str, float]:
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "runs": len(values),
    }


def machine() -> dict[str, Any]:
    return {
        "cores": psutil.cpu_count(),
        "memoryGiB": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def report(name: str, command: str, figures: dict[str, Any]) -> dict[str, Any]:
    document = {"benchmark": name, "command": command, "machine": machine(), **figures}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(document, indent=2) + "\n")
    print(json.dumps(document, indent=2))
    return document


def http_load(
    url: str, method: str, threads: int, seconds: float, body: str | None = None
) -> dict[str, Any]:
    """A bounded load (`threads` clients for `seconds`) from a second process on loopback
    (bench/loadgen.py): its requests, errors, rps and client- and server-side percentiles."""
    command = [sys.executable, str(ROOT / "bench" / "loadgen.py"), "--url", url]
    command += ["--method", method, "--threads", str(threads), "--seconds", str(seconds)]
    if body is not None:
        command += ["--body", body]
    done = subprocess.run(command, capture_output=True, text=True, check=True, timeout=600)
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def now() -> float:
    return time.perf_counter()
