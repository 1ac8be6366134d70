"""Latency: intent POST -> `waiting_input`; approval -> first task started, and -> `succeeded`
for a 1-task run (p50, p99).

    python -m bench.latency [--runs 50]

Both ends are wall-clock instants on this machine: the client's clock before the request,
and the server's recorded instant (the `gate.opened` event, the first task workflow's
DBOS start time).
"""

from __future__ import annotations

import argparse
import time

import sqlalchemy as sa

from bench.harness import bench_stack, percentile, report
from sisu_kodo.deadlines import wait_until
from tests.fixtures.runs import scalar

GATE = (
    "SELECT EXTRACT(EPOCH FROM at) FROM app.run_events WHERE run_id = :r AND type = 'gate.opened'"
)
FIRST_TASK = (
    "SELECT MIN(started_at_epoch_ms) / 1000.0 FROM dbos.workflow_status"
    " WHERE queue_name = 'sbxQ' AND workflow_uuid IN (SELECT 'task-' || (t->>'taskKey')"
    " FROM app.run_steps, jsonb_array_elements(output->'tasks') t"
    " WHERE run_id = :r AND step_id = 'DecideST')"
)

SUCCEEDED = (
    "SELECT EXTRACT(EPOCH FROM at) FROM app.run_events WHERE run_id = :r AND type = 'run.succeeded'"
)


def _poll(engine: sa.Engine, sql: str, run_id: str, timeout: float = 60) -> float:
    value = wait_until(
        lambda: scalar(engine, sql, r=run_id),
        until=lambda answer: answer is not None,
        timeout=timeout,
        interval=0.005,
        what=lambda _: f"run {run_id}: no answer to {sql[:40]}...",
    )
    return float(value)


def main(argv: list[str] | None = None) -> dict[str, object]:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=50)
    args = parser.parse_args(argv)
    to_gate: list[float] = []
    to_first_task: list[float] = []
    to_succeeded: list[float] = []
    with bench_stack() as bench:
        for number in range(args.runs):
            started = time.time()
            run_id = bench.client.submit(
                f"latency {number}", partition="latency", steps=1, concurrency=1
            ).runId
            to_gate.append(_poll(bench.engine, GATE, run_id) - started)
            approved = time.time()
            bench.client.approve_plan(run_id, "bench")
            to_first_task.append(_poll(bench.engine, FIRST_TASK, run_id) - approved)
            to_succeeded.append(_poll(bench.engine, SUCCEEDED, run_id) - approved)
    ms = lambda values, q: round(1000 * percentile(values, q), 1)  # noqa: E731
    return report(
        "latency",
        f"python -m bench.latency --runs {args.runs}",
        {
            "runs": args.runs,
            "intentToWaitingInputMs": {"p50": ms(to_gate, 50), "p99": ms(to_gate, 99)},
            "approvalToFirstTaskMs": {
                "p50": ms(to_first_task, 50),
                "p99": ms(to_first_task, 99),
            },
            "approvalToSucceededMs": {
                "p50": ms(to_succeeded, 50),
                "p99": ms(to_succeeded, 99),
            },
        },
    )


if __name__ == "__main__":
    main()
