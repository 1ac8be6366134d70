"""API under load: GET /runs/{id} of a 1,000-task run, and POST /intents, each driven by
a bounded load from a second process on loopback (bench/loadgen.py).

    python -m bench.api_load [--tasks 1000] [--threads 8] [--seconds 10]
"""

from __future__ import annotations

import argparse
import json

from bench.harness import bench_stack, http_load, report, start_to_gate, wait_terminal


def main(argv: list[str] | None = None) -> dict[str, object]:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=10)
    args = parser.parse_args(argv)
    with bench_stack() as bench:
        run_id = start_to_gate(bench.client, tasks=args.tasks)
        bench.client.approve_plan(run_id, "bench")
        wait_terminal(bench.engine, run_id)
        view = http_load(f"{bench.stack.base_url}/runs/{run_id}", "GET", args.threads, args.seconds)
        intents = http_load(
            f"{bench.stack.base_url}/intents",
            "POST",
            args.threads,
            args.seconds,
            body=json.dumps({"goal": "load", "inputs": {}, "constraints": {}}),
        )
        size = len(bench.client._call("GET", f"/runs/{run_id}").content)
    return report(
        "api_load",
        f"python -m bench.api_load --tasks {args.tasks} --threads {args.threads}"
        f" --seconds {args.seconds}",
        {
            "tasks": args.tasks,
            "threads": args.threads,
            "getRunView": view,
            "runViewBytes": size,
            "postIntents": intents,
        },
    )


if __name__ == "__main__":
    main()
