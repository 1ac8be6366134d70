"""Fairness: tenant A starts a 2,000-task run, then tenant B a 20-task run. B's task start
delay (approval to each task's DBOS start, p50/p99) must not depend on A's backlog.

    python -m bench.fairness [--a-tasks 2000] [--b-tasks 20]

Default queue limits: one tenant may hold at most SISU_SBX_PARTITION_CONCURRENCY (32) of a
worker's SISU_SBX_WORKER_CONCURRENCY (64) task slots, so another tenant always finds room.
"""

from __future__ import annotations

import argparse
import time

from bench.harness import bench_stack, now, percentile, report, start_to_gate, wait_terminal
from tests.fixtures.runs import rows, scalar

STARTS = (
    "SELECT started_at_epoch_ms / 1000.0, updated_at / 1000.0 FROM dbos.workflow_status"
    " WHERE queue_name = 'sbxQ' AND queue_partition_key = :tenant"
    " AND started_at_epoch_ms IS NOT NULL"
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
        run_a = start_to_gate(bench.client, tasks=args.a_tasks, partition="tenant-a")
        run_b = start_to_gate(
            bench.client, tasks=args.b_tasks, concurrency=args.b_tasks, partition="tenant-b"
        )
        a_started = now()
        bench.client.approve_plan(run_a, "bench")
        wait = time.monotonic() + 60
        while (
            scalar(bench.engine, "SELECT COUNT(*) FROM app.sbx_runs WHERE run_id = :r", r=run_a)
            < min(100, args.a_tasks // 4)
            and time.monotonic() < wait
        ):
            time.sleep(0.01)  # B arrives while A's backlog is deep
        b_approved = time.time()
        b_started = now()
        bench.client.approve_plan(run_b, "bench")
        wait_terminal(bench.engine, run_b)
        b_seconds = now() - b_started
        a_done_at_b = scalar(
            bench.engine, "SELECT COUNT(*) FROM app.sbx_runs WHERE run_id = :r", r=run_a
        )
        wait_terminal(bench.engine, run_a)
        a_seconds = now() - a_started
        delays = [
            float(start) - b_approved for start, _ in rows(bench.engine, STARTS, tenant="tenant-b")
        ]
    ms = lambda q: round(1000 * percentile(delays, q), 1)  # noqa: E731
    return report(
        "fairness",
        f"python -m bench.fairness --a-tasks {args.a_tasks} --b-tasks {args.b_tasks}",
        {
            "aTasks": args.a_tasks,
            "bTasks": args.b_tasks,
            "taskMs": args.task_ms,
            "bTaskStartDelayMs": {"p50": ms(50), "p99": ms(99)},
            "aTasksDoneWhenBFinished": a_done_at_b,
            "aTasksPerSecond": round(args.a_tasks / a_seconds, 1),
            "bTasksPerSecond": round(args.b_tasks / b_seconds, 1),
        },
    )


if __name__ == "__main__":
    main()
