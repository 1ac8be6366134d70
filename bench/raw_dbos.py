"""Raw-DBOS baseline: a parent workflow fans out N trivial children on a partitioned queue.

Run by bench/fanout.py in its own process against its own database, with the same queue
limits and polling as Sisu-Kodo's sbxQ, so the ratio compares the engines, not settings.
Prints one JSON line: {"tasks": N, "seconds": [...]}.
"""

from __future__ import annotations

import argparse
import json
import time

from dbos import DBOS, SetEnqueueOptions

QUEUE = "rawQ"
POLL = 0.1


@DBOS.workflow(name="raw_child")
def raw_child(index: int) -> int:
    return index


@DBOS.workflow(name="raw_parent")
def raw_parent(count: int) -> int:
    handles = []
    for index in range(count):
        with SetEnqueueOptions(queue_partition_key="bench"):
            handles.append(DBOS.enqueue_workflow(QUEUE, raw_child, index))
    return sum(handle.get_result(polling_interval_sec=POLL) for handle in handles)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=64)
    args = parser.parse_args()
    DBOS(config={"name": "raw-bench", "system_database_url": args.url, "log_level": "WARNING"})
    DBOS.launch()
    DBOS.register_queue(
        QUEUE,
        partition_concurrency=args.concurrency,
        worker_concurrency=args.concurrency,
        polling_interval_sec=POLL,
    )
    time.sleep(1.5)  # let the queue poller settle on the new interval
    seconds = []
    for _ in range(args.repeat):
        started = time.perf_counter()
        total = DBOS.start_workflow(raw_parent, args.tasks).get_result(polling_interval_sec=POLL)
        seconds.append(time.perf_counter() - started)
        assert total == args.tasks * (args.tasks - 1) // 2
    DBOS.destroy()
    print(json.dumps({"tasks": args.tasks, "seconds": seconds}))


if __name__ == "__main__":
    main()
