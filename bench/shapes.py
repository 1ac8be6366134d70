"""Fan-out shapes against the engine's ceiling: R runs of N mock tasks (zero work) on R
distinct partitions, all approved together, timed from the first approval to the last run
`succeeded` (read from the ledger, so measuring does not load the API). Beside each shape,
the raw-DBOS ceiling of the same shape (bench/raw_ceiling.py: R partitions x N trivial
workflows, no parent, no per-child steps) in its own process on its own database, measured
first in the same invocation (before our processes start, so nothing else polls), and the
ratio ours / ceiling. Both sides report CPU ms per task of the process running workflows,
PostgreSQL CPU ms per task and database transactions per task (bench/meters.py).

    python -m bench.shapes --shape 1x100 --shape 10x100 --shape 1x1000 --repeat 3

With `--workers 2` the stack runs two worker processes (distinct executor ids, as two
`sisu worker` would) and worker CPU is both processes' together; the results go to
`shapes-2workers.json`, beside the one-process figures. The ceiling stays one process.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from dataclasses import dataclass
from typing import Any

from bench.harness import (
    BENCH_ENV,
    ROOT,
    Bench,
    bench_stack,
    postgres_server,
    report,
    spread,
    start_to_gate,
    worker_role,
)
from bench.meters import Meter, Usage, measure
from sisu_kodo.contracts.runs import RunStatus
from tests.fixtures.postgres import TestDatabases

DEFAULT_SHAPES = ("1x100", "10x100", "1x1000")
POLL_SECONDS = BENCH_ENV["SISU_QUEUE_POLL_SECONDS"]
STATUSES = "SELECT status FROM app.runs WHERE id = ANY(:ids)"
FIGURES = (
    "tasksPerSecond",
    "workerCpuMsPerTask",
    "postgresCpuMsPerTask",
    "transactionsPerTask",
    "seconds",
)


@dataclass(frozen=True)
class Shape:
    runs: int
    tasks: int

    @classmethod
    def parse(cls, text: str) -> Shape:
        runs, _, tasks = text.partition("x")
        return cls(int(runs), int(tasks))

    @property
    def name(self) -> str:
        return f"{self.runs}x{self.tasks}"

    @property
    def total(self) -> int:
        return self.runs * self.tasks


def gate_runs(bench: Bench, shape: Shape, concurrency: int) -> list[str]:
    """R runs parked at the approval gate, run i on partition `tenant-i`."""
    return [
        start_to_gate(
            bench.client, tasks=shape.tasks, concurrency=concurrency, partition=f"tenant-{i}"
        )
        for i in range(shape.runs)
    ]


def approve_and_wait(bench: Bench, meter: Meter, run_ids: list[str]) -> None:
    """Approve every run (back to back), then wait until all are terminal and succeeded."""
    statuses: list[RunStatus] = []

    def ended() -> bool:
        statuses[:] = [RunStatus(s) for (s,) in meter.query(STATUSES, ids=run_ids)]
        return all(status.terminal for status in statuses)

    for run_id in run_ids:
        bench.client.approve_plan(run_id, "bench")
    meter.wait_until(ended, timeout=1800)
    assert all(s is RunStatus.SUCCEEDED for s in statuses), statuses


def measure_ours(bench: Bench, meter: Meter, shape: Shape, concurrency: int) -> Usage:
    run_ids = gate_runs(bench, shape, concurrency)
    return measure(meter, shape.total, lambda: approve_and_wait(bench, meter, run_ids))


def measure_ceilings(shapes: list[Shape], repeat: int, concurrency: int) -> dict[str, list[Any]]:
    """Each shape's raw-DBOS ceiling, before our stack starts: its idle workers' pollers
    would otherwise share the cores with the ceiling process."""
    with postgres_server() as server:
        databases = TestDatabases(server)
        try:
            return {
                shape.name: measure_ceiling(databases.create(), shape, repeat, concurrency)
                for shape in shapes
            }
        finally:
            databases.drop_all()


def measure_ceiling(url: str, shape: Shape, repeat: int, concurrency: int) -> list[Any]:
    done = subprocess.run(
        [sys.executable, "-m", "bench.raw_ceiling", "--url", url,
         "--runs", str(shape.runs), "--tasks", str(shape.tasks),
         "--repeat", str(repeat), "--concurrency", str(concurrency), "--poll", POLL_SECONDS],
        cwd=ROOT, capture_output=True, text=True, timeout=3600,
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"raw ceiling {shape.name} failed:\n{done.stderr[-4000:]}")
    windows: list[Any] = json.loads(done.stdout.strip().splitlines()[-1])["windows"]
    return windows


def summary(windows: list[dict[str, float]]) -> dict[str, dict[str, float]]:
    return {figure: spread([w[figure] for w in windows]) for figure in FIGURES}


def shape_figures(ours: list[dict[str, float]], ceiling: list[dict[str, float]]) -> dict[str, Any]:
    rate = statistics.median(w["tasksPerSecond"] for w in ours)
    ceiling_rate = statistics.median(w["tasksPerSecond"] for w in ceiling)
    return {
        "ours": summary(ours),
        "ceiling": summary(ceiling),
        "ratioToCeiling": round(rate / ceiling_rate, 3),
    }


def _server() -> str:
    if os.environ.get("SISU_BENCH_DATABASE_URL"):
        return "the server in SISU_BENCH_DATABASE_URL: its CPU includes other databases' load"
    return "embedded, started for this benchmark"


def main(argv: list[str] | None = None) -> dict[str, object]:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--shape", action="append", type=Shape.parse, help="RxN, repeatable")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--workers", type=int, default=1, help="worker processes")
    args = parser.parse_args(argv)
    shapes: list[Shape] = args.shape or [Shape.parse(s) for s in DEFAULT_SHAPES]
    results: dict[str, Any] = {}
    ceilings = measure_ceilings(shapes, args.repeat, args.concurrency)
    with bench_stack(workers=args.workers) as bench:
        pids = [worker_role(bench, number).pid for number in range(1, args.workers + 1)]
        meter = Meter(bench.stack.database_url, *pids)
        try:
            for shape in shapes:
                ours = [
                    measure_ours(bench, meter, shape, args.concurrency).figures()
                    for _ in range(args.repeat)
                ]
                results[shape.name] = shape_figures(ours, ceilings[shape.name])
        finally:
            meter.close()
    flags = " ".join(f"--shape {shape.name}" for shape in shapes)
    workers = f" --workers {args.workers}" if args.workers > 1 else ""
    return report(
        "shapes" if args.workers == 1 else f"shapes-{args.workers}workers",
        f"python -m bench.shapes {flags} --repeat {args.repeat}{workers}",
        {
            "workers": args.workers,
            "concurrency": args.concurrency,
            "queuePollSeconds": float(POLL_SECONDS),
            "postgres": _server(),
            "shapes": results,
        },
    )


if __name__ == "__main__":
    main()
