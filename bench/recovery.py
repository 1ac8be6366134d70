"""Recovery: (1) a worker killed with SIGKILL and restarted: time from its restart to its
first resumed task; (2) two workers, one killed for good: time for the survivor to take
over (the recovery sweep) and to finish the next task.

    python -m bench.recovery [--tasks 300] [--task-ms 50] [--repeat 3]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

from bench.harness import Bench, bench_stack, report, spread, start_to_gate, wait_terminal
from sisu_kodo.deadlines import wait_until
from tests.fixtures.processes import Role, Stack
from tests.fixtures.runs import scalar

NEWEST_ATTEMPT = "SELECT EXTRACT(EPOCH FROM MAX(created_at)) FROM app.sbx_runs WHERE run_id = :r"
COUNT = "SELECT COUNT(*) FROM app.sbx_runs WHERE run_id = :r"
ORPHANS = "SELECT COUNT(*) FROM dbos.workflow_status WHERE status = 'PENDING' AND executor_id = :e"


def _wait(predicate: Callable[[], object], timeout: float = 120) -> None:
    wait_until(predicate, timeout=timeout, interval=0.005, what="the benchmark condition")


def _first_task_after(bench: Bench, run_id: str, instant: float) -> float:
    engine = bench.engine
    _wait(lambda: float(scalar(engine, NEWEST_ATTEMPT, r=run_id) or 0) > instant)
    first = scalar(
        engine,
        "SELECT EXTRACT(EPOCH FROM MIN(created_at)) FROM app.sbx_runs"
        " WHERE run_id = :r AND created_at > to_timestamp(:t)",
        r=run_id,
        t=instant,
    )
    return float(first) - instant


def restart_once(bench: Bench, tasks: int) -> float:
    run_id = start_to_gate(bench.client, tasks=tasks)
    bench.client.approve_plan(run_id, "bench")
    engine = bench.engine
    _wait(lambda: scalar(engine, COUNT, r=run_id) >= tasks // 4)
    stack: Stack = bench.stack
    live = next(role for role in stack.roles if role.role == "worker" and role.alive())
    live.kill()
    restarted_at = time.time()
    stack.start_worker("worker-1")
    delay = _first_task_after(bench, run_id, restarted_at)
    wait_terminal(engine, run_id)
    return delay


def takeover_once(bench: Bench, tasks: int) -> tuple[float, float]:
    """Two workers share the run; the one owning running workflows dies for good."""
    run_id = start_to_gate(bench.client, tasks=tasks)
    engine = bench.engine
    bench.client.approve_plan(run_id, "bench")
    workers = [role for role in bench.stack.roles if role.role == "worker" and role.alive()]
    owners: dict[str, Role] = {role.env["SISU_EXECUTOR_ID"]: role for role in workers}
    _wait(lambda: any(scalar(engine, ORPHANS, e=executor) for executor in owners))
    doomed_id = next(executor for executor in owners if scalar(engine, ORPHANS, e=executor))
    doomed = owners[doomed_id]
    doomed.kill()
    killed_at = time.time()
    _wait(lambda: scalar(engine, ORPHANS, e=doomed_id) == 0)
    taken_over = time.time() - killed_at
    next_task = _first_task_after(bench, run_id, time.time())
    wait_terminal(engine, run_id)
    # Bring the dead worker back (same id) for the next round.
    bench.stack.start_worker(doomed_id.removeprefix("test-"), ADMIN_PORT=doomed.env["ADMIN_PORT"])
    return taken_over, taken_over + next_task


def main(argv: list[str] | None = None) -> dict[str, object]:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tasks", type=int, default=300)
    parser.add_argument("--task-ms", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    env = {"SBX_MOCK_LATENCY_MS": str(args.task_ms)}
    with bench_stack(**env) as bench:
        restarts = [restart_once(bench, args.tasks) for _ in range(args.repeat)]
    with bench_stack(workers=2, **env) as bench:
        takeovers = [takeover_once(bench, args.tasks) for _ in range(args.repeat)]
        ttl = float(bench.stack.env()["SISU_HEARTBEAT_TTL_SECONDS"])
    return report(
        "recovery",
        f"python -m bench.recovery --tasks {args.tasks} --task-ms {args.task_ms}"
        f" --repeat {args.repeat}",
        {
            "restartToFirstResumedTaskSeconds": spread(restarts),
            "takeoverSeconds": spread([t for t, _ in takeovers]),
            "killToSurvivorsNextTaskSeconds": spread([n for _, n in takeovers]),
            "heartbeatTtlSeconds": ttl,
        },
    )


if __name__ == "__main__":
    main()
