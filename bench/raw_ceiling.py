"""Raw-DBOS ceiling for a shape R x N: R partitions x N trivial workflows, no parent.

bench/raw_dbos.py measures a parent workflow that awaits each child in turn: its per-child
`get_result` steps cost the parent as much as the children, which hides what the engine can
do. Here a plain process (the only one running workflows) enqueues every workflow on a
partitioned queue with the same limits and polling as Sisu-Kodo's sbxQ, in batches of one
system-database transaction each (as our parent enqueues its window), and waits by counting
finished rows in dbos.workflow_status: nothing per child but the child itself.

Run by bench/shapes.py in its own process on its own database:

    python -m bench.raw_ceiling --url URL --runs 10 --tasks 100 --repeat 3 [--poll 0.1]

Prints one JSON line: {"runs": R, "tasks": N, "windows": [<Usage.figures()>...]}.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import sqlalchemy as sa
from dbos import DBOS, DBOSClient, EnqueueOptions

from bench.meters import Meter, Usage, measure

APP = "raw-ceiling"
VERSION = "raw-ceiling-1"
QUEUE = "ceilingQ"
BATCH = 64
FINISHED = (
    "SELECT COUNT(*) FROM dbos.workflow_status"
    " WHERE queue_name = :q AND status = 'SUCCESS' AND workflow_uuid LIKE :prefix"
)


@DBOS.workflow(name="ceiling_child")
def ceiling_child(index: int) -> int:
    return index


def _enqueue(client: DBOSClient, engine: sa.Engine, prefix: str, runs: int, tasks: int) -> None:
    for partition in range(runs):
        for start in range(0, tasks, BATCH):
            with engine.begin() as conn:
                for index in range(start, min(tasks, start + BATCH)):
                    options: EnqueueOptions = {
                        "workflow_name": "ceiling_child",
                        "queue_name": QUEUE,
                        "workflow_id": f"{prefix}{partition}-{index}",
                        "queue_partition_key": f"tenant-{partition}",
                        "app_version": VERSION,
                    }
                    client.enqueue_in_transaction(conn, options, index)


def _window(meter: Meter, client: DBOSClient, repeat: int, runs: int, tasks: int) -> Usage:
    engine = sa.create_engine(meter.url, pool_size=1, max_overflow=0)
    prefix = f"c{repeat}-"

    def done() -> bool:
        finished = meter.query(FINISHED, q=QUEUE, prefix=f"{prefix}%")[0][0]
        return int(finished) == runs * tasks

    def window() -> None:
        _enqueue(client, engine, prefix, runs, tasks)
        meter.wait_until(done, timeout=1800)

    try:
        return measure(meter, runs * tasks, window)
    finally:
        engine.dispose()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", required=True)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--tasks", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--poll", type=float, default=0.1, help="queue polling interval (s)")
    args = parser.parse_args(argv)
    DBOS(
        config={
            "name": APP,
            "system_database_url": args.url,
            "application_version": VERSION,
            "log_level": "WARNING",
        }
    )
    DBOS.launch()
    DBOS.register_queue(
        QUEUE,
        partition_concurrency=args.concurrency,
        worker_concurrency=args.concurrency,
        polling_interval_sec=args.poll,
    )
    time.sleep(1.5)  # let the queue poller settle on the new interval
    client = DBOSClient(system_database_url=args.url, application_name=APP)
    meter = Meter(args.url, os.getpid())
    try:
        windows = [
            _window(meter, client, repeat, args.runs, args.tasks).figures()
            for repeat in range(args.repeat)
        ]
    finally:
        meter.close()
        client.destroy()
        DBOS.destroy()
    print(json.dumps({"runs": args.runs, "tasks": args.tasks, "windows": windows}))


if __name__ == "__main__":
    main()
