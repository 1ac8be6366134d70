"""Fan-out throughput: one run of N mock tasks (zero work), one worker, approval to
`succeeded`, against a raw-DBOS parent/children baseline on the same PostgreSQL.

    python -m bench.fanout [--tasks 1000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

from bench.harness import ROOT, bench_stack, now, report, spread, start_to_gate, wait_terminal
from sisu_kodo.contracts.runs import RunStatus
from tests.fixtures.runs import scalar


def main(argv: list[str] | None = None) -> dict[str, object]:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=64)
    args = parser.parse_args(argv)
    ours: list[float] = []
    rows_per_task: list[float] = []
    with bench_stack() as bench:
        for _ in range(args.repeat):
            run_id = start_to_gate(bench.client, tasks=args.tasks, concurrency=args.concurrency)
            started = now()
            bench.client.approve_plan(run_id, "bench")
            status = wait_terminal(bench.engine, run_id)
            ours.append(now() - started)
            assert status is RunStatus.SUCCEEDED, status
            written = scalar(
                bench.engine,
                "SELECT (SELECT COUNT(*) FROM app.sbx_runs WHERE run_id = :r)"
                " + (SELECT COUNT(*) FROM app.artifacts WHERE run_id = :r)"
                " + (SELECT COUNT(*) FROM app.mock_receipts WHERE run_id = :r)",
                r=run_id,
            )
            rows_per_task.append(written / args.tasks)
        raw_url = bench.fresh_database()
        raw = subprocess.run(
            [sys.executable, str(ROOT / "bench" / "raw_dbos.py"), "--url", raw_url,
             "--tasks", str(args.tasks), "--repeat", str(args.repeat),
             "--concurrency", str(args.concurrency)],
            capture_output=True, text=True, check=True, timeout=1800,
        )  # fmt: skip
    raw_seconds = json.loads(raw.stdout.strip().splitlines()[-1])["seconds"]
    ours_rate = [args.tasks / s for s in ours]
    raw_rate = [args.tasks / s for s in raw_seconds]
    return report(
        "fanout",
        f"python -m bench.fanout --tasks {args.tasks} --repeat {args.repeat}",
        {
            "tasks": args.tasks,
            "concurrency": args.concurrency,
            "sisuSeconds": spread(ours),
            "sisuTasksPerSecond": spread(ours_rate),
            "rawDbosSeconds": spread(raw_seconds),
            "rawDbosTasksPerSecond": spread(raw_rate),
            "ratioToRawDbos": round(spread(ours_rate)["median"] / spread(raw_rate)["median"], 3),
            "ledgerRowsPerTask": spread(rows_per_task),
        },
    )


if __name__ == "__main__":
    main()
