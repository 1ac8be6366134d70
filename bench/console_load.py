"""The console under load: the runs page with N runs in the ledger, and the run page (and
its polled live part) of a T-task run, each driven by a bounded load from a second process
on loopback (bench/loadgen.py), timed by the client and by the API's Server-Timing. Auth
is off in the bench stack, so no login is needed.

    python -m bench.console_load [--runs 10000] [--tasks 10000] [--threads 4] [--seconds 10]
"""

from __future__ import annotations

import argparse
import uuid

import sqlalchemy as sa

from bench.harness import bench_stack, http_load, report, start_to_gate
from sisu_kodo.api.service import run_id_for
from sisu_kodo.db import approvals, intents, runs
from sisu_kodo.workflows.names import plan_workflow_id

TENANTS = ("tenant-a", "tenant-b", "tenant-c", "tenant-d")


def seed_runs(engine: sa.Engine, count: int, app_version: str) -> None:
    """`count` queued runs written straight to the ledger (no workflow: the list is read,
    nothing executes them), spread over four tenants."""
    with engine.begin() as conn:
        for number in range(count):
            intent_id = f"it_{uuid.uuid4().hex}"
            run_id = run_id_for(intent_id)
            tenant = TENANTS[number % len(TENANTS)]
            intents.create_intent(
                conn, intent_id=intent_id, goal=f"seeded run {number}", inputs={},
                constraints={}, tenant=tenant,
            )  # fmt: skip
            runs.insert_run(
                conn,
                run_id=run_id,
                intent_id=intent_id,
                workflow_id=plan_workflow_id(run_id),
                queue_partition_key=tenant,
                recipe_name="sandbox-default",
                start_request={"queuePartitionKey": tenant},
                app_version=app_version,
            )
            approvals.record_starter(conn, run_id=run_id, key_id=None, name="anonymous")


def main(argv: list[str] | None = None) -> dict[str, object]:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=10)
    args = parser.parse_args(argv)
    # The seeded runs have no workflow: keep the watchdog from failing them mid-measure.
    with bench_stack(SISU_WATCHDOG_GRACE_SECONDS="86400") as bench:
        run_id = start_to_gate(bench.client, tasks=args.tasks)
        seed_runs(bench.engine, args.runs, bench.client.get_run(run_id).appVersion)
        base = f"{bench.stack.base_url}/console"
        load = {"threads": args.threads, "seconds": args.seconds}
        figures = {
            "runsPage": http_load(f"{base}/runs", "GET", **load),
            "runsPageFiltered": http_load(f"{base}/runs?tenant=tenant-b&q=seeded", "GET", **load),
            "approvalsPage": http_load(f"{base}/approvals", "GET", **load),
            "runPage": http_load(f"{base}/runs/{run_id}?offset=5000", "GET", **load),
            "runLive": http_load(f"{base}/runs/{run_id}/live?offset=5000", "GET", **load),
        }
    return report(
        "console_load",
        f"python -m bench.console_load --runs {args.runs} --tasks {args.tasks}"
        f" --threads {args.threads} --seconds {args.seconds}",
        {"runs": args.runs, "tasks": args.tasks, "threads": args.threads, **figures},
    )


if __name__ == "__main__":
    main()
