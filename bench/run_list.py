"""The run list at scale: GET /runs over N runs (10 tenants, every status, T tasks each),
the first page, a filtered page, a page deep in the cursor chain, and GET /runs/counts,
each under a bounded load from a second process on loopback (bench/loadgen.py).

Server-side figures come from the API's `Server-Timing` header; the client-side ones
add the loopback round trip. Runs are seeded by SQL (the list reads only the ledger).

    python -m bench.run_list [--runs 10000] [--tasks 10] [--threads 4] [--seconds 10]
"""

from __future__ import annotations

import argparse
from typing import Any

import httpx
import sqlalchemy as sa

from bench.harness import bench_stack, http_load, report

TENANTS = 10
STATUSES = ["queued", "running", "waiting_input", "succeeded", "failed", "retries_exceeded"]
STATUSES.append("canceled")

SEED = [
    """
    INSERT INTO app.intents (id, goal, tenant, created_at)
    SELECT 'it_bench_' || g, 'benchmark goal ' || g || E'\\nwith a second line',
           'tenant-' || (g % :tenants), now() - make_interval(secs => g)
      FROM generate_series(1, :runs) g
    """,
    """
    INSERT INTO app.runs (id, intent_id, workflow_id, status, last_step, next_action,
                          queue_partition_key, recipe_name, start_request, app_version,
                          started_by_name, created_at, updated_at)
    SELECT 'run_bench_' || g, 'it_bench_' || g, 'wf_bench_' || g,
           (CAST(:statuses AS text[]))[1 + g % 7], 'ExecuteST', 'NONE',
           'tenant-' || (g % :tenants), 'sandbox-default', '{}'::jsonb, 'v1', 'bench',
           now() - make_interval(secs => g), now() - make_interval(secs => g)
      FROM generate_series(1, :runs) g
    """,
    """
    INSERT INTO app.run_tasks (run_id, position, task_key, task_index, name, command)
    SELECT 'run_bench_' || g, t, 'key_' || g || '_' || t, t, 'task-' || t, 'true'
      FROM generate_series(1, :runs) g, generate_series(0, :tasks - 1) t
    """,
    # Attempts for the runs that got to execute: succeeded, failed and retries_exceeded.
    """
    INSERT INTO app.sbx_runs (run_id, step_id, task_key, attempt, attempt_offset, provider,
                              request, response, err_code, metrics)
    SELECT 'run_bench_' || g, 'ExecuteST', 'key_' || g || '_' || t, 1, 0, 'mock',
           '{}'::jsonb, '{}'::jsonb,
           CASE WHEN t = 0 AND g % 7 IN (4, 5) THEN 'CMD_NONZERO' ELSE 'NONE' END, '{}'::jsonb
      FROM generate_series(1, :runs) g, generate_series(0, :tasks - 1) t
     WHERE g % 7 IN (3, 4, 5)
    """,
]


def seed(engine: sa.Engine, *, runs: int, tasks: int) -> None:
    params = {"runs": runs, "tasks": tasks, "tenants": TENANTS, "statuses": STATUSES}
    with engine.begin() as conn:
        for statement in SEED:
            conn.execute(sa.text(statement), params)
    with engine.connect() as conn:
        conn.execution_options(isolation_level="AUTOCOMMIT").execute(sa.text("ANALYZE"))


def deep_cursor(base: str, pages: int) -> str | None:
    """The nextCursor after `pages` pages of 200: a page deep in the chain."""
    cursor: str | None = None
    for _ in range(pages):
        params: dict[str, Any] = {"limit": 200, **({"cursor": cursor} if cursor else {})}
        cursor = httpx.get(f"{base}/runs", params=params, timeout=60).json()["nextCursor"]
        if cursor is None:
            break
    return cursor


def main(argv: list[str] | None = None) -> dict[str, object]:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--tasks", type=int, default=10)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=10)
    args = parser.parse_args(argv)
    with bench_stack(workers=0) as bench:
        seed(bench.engine, runs=args.runs, tasks=args.tasks)
        base = bench.stack.base_url
        cursor = deep_cursor(base, pages=args.runs // 400)
        targets = {
            "firstPage": f"{base}/runs",
            "filteredPage": f"{base}/runs?status=failed&tenant=tenant-3&q=goal",
            "deepPage": f"{base}/runs?cursor={cursor}" if cursor else f"{base}/runs",
            "counts": f"{base}/runs/counts",
            "filteredCounts": f"{base}/runs/counts?tenant=tenant-3&q=goal",
        }
        figures = {
            name: http_load(url, "GET", args.threads, args.seconds) for name, url in targets.items()
        }
        listed = httpx.get(f"{base}/runs", timeout=60).json()["items"]
    return report(
        "run_list",
        f"python -m bench.run_list --runs {args.runs} --tasks {args.tasks}"
        f" --threads {args.threads} --seconds {args.seconds}",
        {
            "runs": args.runs,
            "tasksPerRun": args.tasks,
            "threads": args.threads,
            "pageSize": len(listed),
            **figures,
        },
    )


if __name__ == "__main__":
    main()
