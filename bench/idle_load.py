"""Load that waiting adds: database transactions per second with 0, 1, 10, 100 runs
executing and waiting on one long task each, and GET /runs/{id} of an executing
10,000-task run.

    python -m bench.idle_load [--waiting 0 --waiting 1 --waiting 10 --waiting 100]
                              [--seconds 20] [--view-tasks 10000] [--view-requests 20]

Every run is brought to the gate first; each level then approves the runs it adds, waits
until each of their task workflows is running (a mock task of 300 s, the cap), and
counts xact_commit + xact_rollback of the bench database over `--seconds` (every process
of the stack: worker, API, their pollers). The waiting runs are then canceled, and a
10,000-task run whose tasks also last 300 s (8 in flight) is still executing while its
RunView and a page of its tasks are fetched.
"""

from __future__ import annotations

import argparse
import os
import time

from bench.harness import Bench, bench_stack, percentile, report, start_to_gate, worker_role
from bench.meters import Meter
from sisu_kodo.contracts.intents import MOCK_KNOB_CAPS, MOCK_LATENCY_MS
from sisu_kodo.deadlines import wait_until
from tests.fixtures.runs import scalar

LONG_TASK = {MOCK_LATENCY_MS: MOCK_KNOB_CAPS[MOCK_LATENCY_MS]}
RUNNING_TASKS = (
    "SELECT COUNT(*) FROM dbos.workflow_status WHERE queue_name = 'sbxQ' AND status = 'PENDING'"
)
# Room for 100 runs of one task each at once, on every queue limit (the cap on executing
# runs is what this benchmark must not hit).
ENV = {
    "SISU_SBX_WORKER_CONCURRENCY": "512",
    "SISU_INTENT_WORKER_CONCURRENCY": "512",
}


def _wait_running(bench: Bench, count: int, *, at_most: bool = False) -> None:
    """Until at least (or, `at_most`, at most) `count` task workflows are running."""
    wait_until(
        lambda: scalar(bench.engine, RUNNING_TASKS),
        until=lambda running: (
            running is not None and (running <= count if at_most else running >= count)
        ),
        timeout=600,
        interval=0.2,
        what=lambda running: f"{running} of {count} tasks running",
    )


def _transactions_per_second(meter: Meter, seconds: float) -> float:
    before, started = meter.transactions(), time.perf_counter()
    time.sleep(seconds)
    after = meter.transactions()
    return (after - before) / (time.perf_counter() - started)


def _idle_load(bench: Bench, levels: list[int], seconds: float) -> dict[str, float]:
    gated = [
        start_to_gate(
            bench.client, tasks=1, concurrency=1, partition=f"idle-{n}", constraints=LONG_TASK
        )
        for n in range(max(levels, default=0))
    ]
    meter = Meter(bench.stack.database_url, worker_role(bench).pid)
    rates: dict[str, float] = {}
    try:
        approved = 0
        for level in sorted(levels):
            for run_id in gated[approved:level]:
                bench.client.approve_plan(run_id, "bench")
            approved = max(approved, level)
            _wait_running(bench, approved)
            rates[str(level)] = round(_transactions_per_second(meter, seconds), 1)
    finally:
        meter.close()
    # The view is timed on a quiet stack: the waiting runs are canceled, their tasks gone.
    for run_id in gated[:approved]:
        bench.client.cancel(run_id)
    _wait_running(bench, 0, at_most=True)
    return rates


def _view_latency(bench: Bench, tasks: int, requests: int) -> dict[str, float]:
    run_id = start_to_gate(
        bench.client, tasks=tasks, concurrency=8, partition="view", constraints=LONG_TASK
    )
    bench.client.approve_plan(run_id, "bench")
    bench.client.wait(
        run_id,
        lambda r: any(s.stepId == "ExecuteST" for s in r.steps),
        timeout=600,
        poll=0.5,
    )
    timings: dict[str, list[float]] = {"view": [], "tasks": []}
    paths = {"view": f"/runs/{run_id}", "tasks": f"/runs/{run_id}/tasks?offset=5000&limit=100"}
    for _ in range(requests):
        for name, path in paths.items():
            started = time.perf_counter()
            bench.client._call("GET", path)
            timings[name].append(1000 * (time.perf_counter() - started))
    status = scalar(bench.engine, "SELECT status FROM app.runs WHERE id = :r", r=run_id)
    assert status == "running", f"the {tasks}-task run was {status}, not executing"
    return {
        "getRunViewP50Ms": round(percentile(timings["view"], 50), 1),
        "getRunViewP99Ms": round(percentile(timings["view"], 99), 1),
        "getTasksPageP50Ms": round(percentile(timings["tasks"], 50), 1),
    }


def main(argv: list[str] | None = None) -> dict[str, object]:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--waiting", type=int, action="append")
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--view-tasks", type=int, default=10_000)
    parser.add_argument("--view-requests", type=int, default=20)
    parser.add_argument("--label", default="", help="recorded as is, e.g. 'before'")
    args = parser.parse_args(argv)
    levels = args.waiting or [0, 1, 10, 100]
    # Other work on the machine shows here: transaction counts suffer less from it than times.
    load_at_start = os.getloadavg()[0]
    with bench_stack(**ENV) as bench:
        rates = _idle_load(bench, levels, args.seconds)
        view = _view_latency(bench, args.view_tasks, args.view_requests)
    command = "python -m bench.idle_load " + " ".join(f"--waiting {n}" for n in levels)
    command += f" --seconds {args.seconds:g} --view-tasks {args.view_tasks}"
    name = "idle_load" + (f"-{args.label}" if args.label else "")
    return report(
        name,
        command,
        {
            "transactionsPerSecondByWaitingRuns": rates,
            "viewTasks": args.view_tasks,
            **view,
            "loadAverage1m": {"start": load_at_start, "end": os.getloadavg()[0]},
        },
    )


if __name__ == "__main__":
    main()
