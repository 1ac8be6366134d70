"""Fairness: tenant A starts a 2,000-task run, then tenant B a 20-task run. B's task start
delay (approval to each task's DBOS start, p50/p99) must stay small and independent of
A's backlog: it is compared with the same 20-task run of B on an idle system.

    python -m bench.fairness [--a-tasks 2000] [--b-tasks 20]

Default queue limits: one tenant may hold at most SISU_SBX_PARTITION_CONCURRENCY (32) of a
worker's SISU_SBX_WORKER_CONCURRENCY (64) task slots, so another tenant always finds room;
and a run keeps at most `workload.concurrency` tasks enqueued, so A's backlog waits in
its parent workflow, not ahead of B in the queue.
"""

from __future__ import annotations

import argparse
import contextlib
import time

import sqlalchemy as sa

from bench.harness import Bench, bench_stack, now, percentile, report, start_to_gate, wait_terminal
from sisu_kodo.deadlines import WaitTimeout, wait_until
from tests.fixtures.runs import rows, scalar

STARTS = (
    "SELECT started_at_epoch_ms / 1000.0 FROM dbos.workflow_status"
    " WHERE queue_name = 'sbxQ' AND started_at_epoch_ms IS NOT NULL AND workflow_uuid IN"
    " (SELECT 'task-' || (t->>'taskKey') FROM app.run_steps,"
    " jsonb_array_elements(output->'tasks') t WHERE run_id = :r AND step_id = 'DecideST')"
)
DONE = "SELECT COUNT(*) FROM app.sbx_runs WHERE run_id = :r"


def _run_b(bench: Bench, tasks: int) -> tuple[list[float], float]:
    """B's task start delays (seconds) and its tasks per second."""
    run_b = start_to_gate(bench.client, tasks=tasks, concurrency=tasks, partition="tenant-b")
    approved, started = time.time(), now()
    bench.client.approve_plan(run_b, "bench")
    wait_terminal(bench.engine, run_b)
    rate = tasks / (now() - started)
    delays = [float(start) - approved for (start,) in rows(bench.engine, STARTS, r=run_b)]
    return delays, rate


def _ms(values: list[float]) -> dict[str, float]:
    return {
        "p50": round(1000 * percentile(values, 50), 1),
        "p99": round(1000 * percentile(values, 99), 1),
    }


def _wait_backlog(engine: sa.Engine, run_a: str, at_least: int) -> None:
    # B arrives once A has this much done, or after two minutes whatever A has done.
    with contextlib.suppress(WaitTimeout):
        wait_until(
            lambda: scalar(engine, DONE, r=run_a) >= at_least,
            timeout=120,
            interval=0.01,
            what=f"{at_least} tasks of run A",
        )


def main(argv: list[str] | None = None) -> dict[str, object]:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--a-tasks", type=int, default=2000)
    parser.add_argument("--b-tasks", type=int, default=20)
    parser.add_argument("--task-ms", type=int, default=20, help="mock work per task")
    args = parser.parse_args(argv)
    fair_env = {
        "SISU_SBX_PARTITION_CONCURRENCY": "32",
        "SISU_SBX_WORKER_CONCURRENCY": "64",
        "SBX_MOCK_LATENCY_MS": str(args.task_ms),
    }
    with bench_stack(**fair_env) as bench:
        alone, _ = _run_b(bench, args.b_tasks)
        run_a = start_to_gate(bench.client, tasks=args.a_tasks, partition="tenant-a")
        a_started = now()
        bench.client.approve_plan(run_a, "bench")
        _wait_backlog(bench.engine, run_a, min(100, args.a_tasks // 4))  # B arrives mid-backlog
        a_done_at_b = scalar(bench.engine, DONE, r=run_a)
        contended, b_rate = _run_b(bench, args.b_tasks)
        wait_terminal(bench.engine, run_a)
        a_rate = args.a_tasks / (now() - a_started)
    return report(
        "fairness",
        f"python -m bench.fairness --a-tasks {args.a_tasks} --b-tasks {args.b_tasks}",
        {
            "aTasks": args.a_tasks,
            "bTasks": args.b_tasks,
            "taskMs": args.task_ms,
            "bTaskStartDelayMs": _ms(contended),
            "bTaskStartDelayMsOnIdleSystem": _ms(alone),
            "aBacklogWhenBStarted": args.a_tasks - a_done_at_b,
            "aTasksPerSecond": round(a_rate, 1),
            "bTasksPerSecond": round(b_rate, 1),
        },
    )


if __name__ == "__main__":
    main()
