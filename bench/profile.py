r"""Profile one shape: the worker under py-spy, and PostgreSQL's top statements.

    python -m bench.profile --shape 10x100 [--format speedscope|flamegraph] [--rate 100]

Runs the shape once (as bench/shapes.py does, without the ceiling) with `py-spy record`
attached to the worker from just before the approvals to the last run `succeeded`, and
writes bench/results/profile-<shape>.<speedscope.json|svg>. py-spy is not a dependency:
`.venv/bin/pip install py-spy` (it needs ptrace rights over the worker: root, or
kernel.yama.ptrace_scope=0).

pg_stat_statements (top statements by calls and by total time, over the same window) needs
the extension preloaded by the server (`shared_preload_libraries`). The embedded server
cannot provide it: pgserver's binaries do not ship the module and EmbeddedPostgres takes no
server options. Point SISU_BENCH_DATABASE_URL at a server started with
`-c shared_preload_libraries=pg_stat_statements`; otherwise the JSON says why it is missing.
With Debian's PostgreSQL 15 installed, as root, a throwaway one (stop it afterwards with
`pg_ctl -D /tmp/pgss/data stop`, run as postgres too):

    mkdir -p /tmp/pgss && chown postgres /tmp/pgss
    runuser -u postgres -- /usr/lib/postgresql/15/bin/initdb -D /tmp/pgss/data -A trust -U postgres
    runuser -u postgres -- /usr/lib/postgresql/15/bin/pg_ctl -D /tmp/pgss/data -l /tmp/pgss/log \
        -w -o "-c shared_preload_libraries=pg_stat_statements -h 127.0.0.1 -p 55499 -k ''" start
    SISU_BENCH_DATABASE_URL=postgresql://postgres@127.0.0.1:55499/postgres \
        python -m bench.profile --shape 10x100

Our own polling of app.runs shows among the statements (it is the benchmark's, not the
worker's).
"""

from __future__ import annotations

import argparse
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from bench.harness import RESULTS, Bench, bench_stack, report, worker_role
from bench.meters import Meter, measure
from bench.shapes import Shape, approve_and_wait, gate_runs

TOP = 40
SUFFIX = {"speedscope": "speedscope.json", "flamegraph": "svg", "raw": "collapsed.txt"}
STATEMENTS = """
SELECT calls, round(total_exec_time::numeric, 1) AS total_ms, rows, left(query, 240) AS query
FROM pg_stat_statements
WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
ORDER BY {order} DESC LIMIT :top
"""


def py_spy() -> str:
    found = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(found).exists():
        raise SystemExit("py-spy is not installed: .venv/bin/pip install py-spy")
    return found


def start_profiler(
    pid: int, output: Path, fmt: str, rate: int, gil: bool
) -> subprocess.Popen[bytes]:
    """`gil`: sample only the thread holding the GIL (where the process spends CPU in
    Python), not every thread (where its threads wait)."""
    return subprocess.Popen(
        [py_spy(), "record", "--pid", str(pid), "--output", str(output), "--format", fmt,
         "--rate", str(rate), "--nonblocking", *(["--gil"] if gil else [])],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip


def stop_profiler(profiler: subprocess.Popen[bytes]) -> None:
    """SIGINT makes py-spy stop sampling and write its file."""
    profiler.send_signal(signal.SIGINT)
    _, errors = profiler.communicate(timeout=120)
    if profiler.returncode not in (0, -signal.SIGINT):
        raise RuntimeError(f"py-spy failed ({profiler.returncode}): {errors.decode()[-2000:]}")


def enable_statements(meter: Meter) -> str | None:
    """Create pg_stat_statements in the bench database; the reason if impossible."""
    preloaded = str(meter.query("SHOW shared_preload_libraries")[0][0])
    if "pg_stat_statements" not in preloaded:
        return (
            "pg_stat_statements is not in the server's shared_preload_libraries"
            f" ({preloaded!r}); see `python -m bench.profile --help`"
        )
    meter.query("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
    return None


def top_statements(meter: Meter, order: str) -> list[dict[str, Any]]:
    found = meter.query(STATEMENTS.format(order=order), top=TOP)
    return [{**row._asdict(), "total_ms": float(row.total_ms)} for row in found]


def statements(meter: Meter, unavailable: str | None) -> dict[str, Any]:
    if unavailable:
        return {"available": False, "reason": unavailable}
    return {
        "available": True,
        "byCalls": top_statements(meter, "calls"),
        "byTotalTime": top_statements(meter, "total_exec_time"),
    }


def profile(bench: Bench, args: argparse.Namespace, output: Path) -> dict[str, Any]:
    shape: Shape = args.shape
    worker = worker_role(bench).pid
    meter = Meter(bench.stack.database_url, worker)
    try:
        unavailable = enable_statements(meter)
        run_ids = gate_runs(bench, shape, args.concurrency)
        if unavailable is None:  # count the fan-out only, not the runs' way to the gate
            meter.query("SELECT pg_stat_statements_reset()")
        profiler = start_profiler(worker, output, args.format, args.rate, args.gil)
        try:
            usage = measure(meter, shape.total, lambda: approve_and_wait(bench, meter, run_ids))
        finally:
            stop_profiler(profiler)
        return {"underPySpy": usage.figures(), "pgStatStatements": statements(meter, unavailable)}
    finally:
        meter.close()


def main(argv: list[str] | None = None) -> dict[str, object]:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--shape", type=Shape.parse, default=Shape.parse("10x100"))
    parser.add_argument("--format", choices=sorted(SUFFIX), default="speedscope")
    parser.add_argument("--rate", type=int, default=100, help="py-spy samples per second")
    parser.add_argument("--gil", action="store_true", help="sample the GIL holder only")
    parser.add_argument("--concurrency", type=int, default=64)
    args = parser.parse_args(argv)
    RESULTS.mkdir(parents=True, exist_ok=True)
    name = f"profile-{args.shape.name}{'-gil' if args.gil else ''}"
    output = RESULTS / f"{name}.{SUFFIX[args.format]}"
    with bench_stack() as bench:
        figures = profile(bench, args, output)
    gil = " --gil" if args.gil else ""
    return report(
        name,
        f"python -m bench.profile --shape {args.shape.name} --format {args.format}{gil}",
        {"shape": args.shape.name, "pySpyOutput": output.name, **figures},
    )


if __name__ == "__main__":
    main()
