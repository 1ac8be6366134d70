"""Scale: one 10,000-task run. Worker peak RSS (and RSS as tasks finish, to show memory
does not grow with finished tasks), rows written per task, database size per 1,000 tasks.

    python -m bench.scale [--tasks 10000]
"""

from __future__ import annotations

import argparse
import threading
import time

import psutil

from bench.harness import bench_stack, now, report, start_to_gate, wait_terminal, worker_role
from tests.fixtures.runs import scalar

ROWS = """
SELECT (SELECT COUNT(*) FROM app.sbx_runs) + (SELECT COUNT(*) FROM app.artifacts)
     + (SELECT COUNT(*) FROM app.mock_receipts) + (SELECT COUNT(*) FROM app.run_events)
     + (SELECT COUNT(*) FROM app.run_steps) + (SELECT COUNT(*) FROM dbos.workflow_status)
     + (SELECT COUNT(*) FROM dbos.operation_outputs) + (SELECT COUNT(*) FROM dbos.workflow_input)
     + (SELECT COUNT(*) FROM dbos.workflow_output)
"""


def main(argv: list[str] | None = None) -> dict[str, object]:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tasks", type=int, default=10_000)
    args = parser.parse_args(argv)
    with bench_stack() as bench:
        run_id = start_to_gate(bench.client, tasks=args.tasks, timeout=1200)
        rows_before = scalar(bench.engine, ROWS)
        size_before = scalar(bench.engine, "SELECT pg_database_size(current_database())")
        process = psutil.Process(worker_role(bench).pid)
        samples: list[tuple[int, float]] = []
        stop = threading.Event()

        def sample() -> None:
            while not stop.is_set():
                done = scalar(bench.engine, "SELECT COUNT(*) FROM app.mock_receipts")
                samples.append((int(done), process.memory_info().rss / 2**20))
                time.sleep(0.25)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        started = now()
        bench.client.approve_plan(run_id, "bench")
        status = wait_terminal(bench.engine, run_id, timeout=3600)
        seconds = now() - started
        stop.set()
        sampler.join()
        rows_written = scalar(bench.engine, ROWS) - rows_before
        size_after = scalar(bench.engine, "SELECT pg_database_size(current_database())")
    by_quarter = {}
    for quarter in (1, 2, 3, 4):
        reached = [rss for done, rss in samples if done >= args.tasks * quarter // 4]
        by_quarter[f"{25 * quarter}%"] = round(reached[0], 1) if reached else None
    return report(
        "scale",
        f"python -m bench.scale --tasks {args.tasks}",
        {
            "tasks": args.tasks,
            "status": status.value,
            "seconds": round(seconds, 1),
            "tasksPerSecond": round(args.tasks / seconds, 1),
            "workerPeakRssMB": round(max(rss for _, rss in samples), 1),
            "workerRssMBWhenDone": by_quarter,
            "rowsWrittenPerTask": round(rows_written / args.tasks, 2),
            "databaseMBPer1000Tasks": round(
                (size_after - size_before) / 2**20 / args.tasks * 1000, 2
            ),
        },
    )


if __name__ == "__main__":
    main()
