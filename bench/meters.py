"""What a throughput window costs: wall time, one process's CPU, PostgreSQL's CPU, transactions.

Used by bench/shapes.py for Sisu-Kodo's worker and by bench/raw_ceiling.py for the raw-DBOS
process, so both sides of a ratio are measured the same way. It imports neither sisu_kodo
nor the harness: the ceiling process stays a plain DBOS program.

- Process CPU: psutil user + system time of the measured processes (the workers), summed.
- PostgreSQL CPU: psutil CPU times of the server's postmaster (found by its listening
  port; if sockets cannot be seen, every `postgres` process) and its children. On a shared
  server this includes other databases' load; backends that exit inside the window are
  missed (DBOS and our pools keep theirs open).
- Transactions: xact_commit + xact_rollback of the measured databases in pg_stat_database,
  minus the meter's own statements. Backends flush these counters at most once a second,
  so each reading first waits STATS_FLUSH_SECONDS; the figure includes the pollers' idle
  traffic over that wait, on both sides of the ratio alike.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psutil
import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.pool import StaticPool

STATS_FLUSH_SECONDS = 1.2
POLL_SECONDS = 0.02
TRANSACTIONS = (
    "SELECT COALESCE(SUM(xact_commit + xact_rollback), 0) FROM pg_stat_database"
    " WHERE datname = ANY(:names)"
)


@dataclass(frozen=True)
class Reading:
    at: float
    process_cpu: float
    postgres_cpu: dict[tuple[int, float], float]


@dataclass(frozen=True)
class Usage:
    """One measured window, as the per-task figures every shape reports."""

    tasks: int
    seconds: float
    process_cpu: float
    postgres_cpu: float
    transactions: int

    def figures(self) -> dict[str, float]:
        return {
            "seconds": round(self.seconds, 3),
            "tasksPerSecond": round(self.tasks / self.seconds, 1),
            "workerCpuMsPerTask": round(1000 * self.process_cpu / self.tasks, 3),
            "postgresCpuMsPerTask": round(1000 * self.postgres_cpu / self.tasks, 3),
            "transactionsPerTask": round(self.transactions / self.tasks, 2),
        }


def postmaster(url: str) -> psutil.Process | None:
    """The process listening on the URL's port (None if it cannot be seen, e.g. not root)."""
    port = make_url(url).port or 5432
    try:
        connections = psutil.net_connections("tcp")
    except psutil.AccessDenied:
        return None
    for conn in connections:
        address = conn.laddr
        listening = conn.status == psutil.CONN_LISTEN and conn.pid
        if listening and isinstance(address, tuple) and address[1:2] == (port,):
            return psutil.Process(conn.pid)
    return None


def _cpu(process: psutil.Process) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)


def _server_processes(server: psutil.Process | None) -> list[psutil.Process]:
    if server is None:  # every PostgreSQL process of the machine, then
        return [p for p in psutil.process_iter(["name"]) if p.info["name"] == "postgres"]
    return [server, *server.children(recursive=True)]


def _server_cpu(server: psutil.Process | None) -> dict[tuple[int, float], float]:
    cpu = {}
    for process in _server_processes(server):
        try:
            cpu[(process.pid, process.create_time())] = _cpu(process)
        except psutil.NoSuchProcess:
            continue
    return cpu


class Meter:
    """Readings of some processes, of one database and of the PostgreSQL server holding it."""

    def __init__(self, url: str, *pids: int) -> None:
        """Measure processes `pids` (their CPU summed: every process running workflows)
        and the database of `url` (ledger and DBOS tables alike)."""
        self.url = make_url(url).set(drivername="postgresql+psycopg")
        self._engine = sa.create_engine(
            self.url, isolation_level="AUTOCOMMIT", poolclass=StaticPool
        )
        self._conn = self._engine.connect()
        self._databases = [self.url.database]
        self._processes = [psutil.Process(pid) for pid in pids]
        self._server = postmaster(url)
        self._statements = 0

    def close(self) -> None:
        self._conn.close()
        self._engine.dispose()

    def query(self, sql: str, **params: Any) -> list[sa.Row[Any]]:
        """One autocommit statement (one transaction), counted so it can be subtracted."""
        self._statements += 1
        result = self._conn.execute(sa.text(sql), params)
        return list(result.all()) if result.returns_rows else []

    def wait_until(self, done: Callable[[], bool], *, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not done():
            if time.monotonic() > deadline:
                raise TimeoutError(f"not done after {timeout}s")
            time.sleep(POLL_SECONDS)

    def read(self) -> Reading:
        processes = sum(_cpu(process) for process in self._processes)
        return Reading(time.perf_counter(), processes, _server_cpu(self._server))

    def transactions(self) -> int:
        """The databases' transaction count, net of the meter's own statements so far."""
        time.sleep(STATS_FLUSH_SECONDS)
        total = int(self.query(TRANSACTIONS, names=self._databases)[0][0])
        return total - self._statements

    def usage(self, tasks: int, before: Reading, after: Reading, transactions: int) -> Usage:
        postgres = sum(
            cpu - before.postgres_cpu.get(key, 0.0) for key, cpu in after.postgres_cpu.items()
        )
        return Usage(
            tasks=tasks,
            seconds=after.at - before.at,
            process_cpu=after.process_cpu - before.process_cpu,
            postgres_cpu=postgres,
            transactions=transactions,
        )


def measure(meter: Meter, tasks: int, window: Callable[[], None]) -> Usage:
    """Run `window` (start the work, wait for its end) and return what it cost."""
    transactions_before = meter.transactions()
    before = meter.read()
    window()
    after = meter.read()
    return meter.usage(tasks, before, after, meter.transactions() - transactions_before)
