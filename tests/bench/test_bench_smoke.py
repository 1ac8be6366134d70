"""Each benchmark runs end to end with a tiny N: proof that the harness works.

No timing is asserted (benchmarks are not tests); only that each produces its figures.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bench.shapes import FIGURES

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.integration

IDLE_LOAD_ARGS = shlex.split(
    "--waiting 0 --waiting 2 --seconds 1 --view-tasks 30 --view-requests 2"
)
SMOKE = [
    ("fanout", ["--tasks", "20", "--repeat", "1"], ["sisuTasksPerSecond", "ratioToRawDbos"]),
    ("latency", ["--runs", "3"], ["intentToWaitingInputMs", "approvalToFirstTaskMs"]),
    ("api_load", ["--tasks", "20", "--seconds", "1", "--threads", "2"], ["getRunView"]),
    (
        "console_load",
        ["--runs", "40", "--tasks", "20", "--seconds", "1", "--threads", "2"],
        ["runsPage", "runPage"],
    ),
    ("recovery", ["--tasks", "40", "--repeat", "1"], ["restartToFirstResumedTaskSeconds"]),
    ("fairness", ["--a-tasks", "80", "--b-tasks", "5"], ["bTaskStartDelayMs"]),
    ("scale", ["--tasks", "60"], ["workerPeakRssMB", "rowsWrittenPerTask"]),
    ("run_list", ["--runs", "60", "--seconds", "1", "--threads", "2"], ["firstPage", "counts"]),
    ("idle_load", IDLE_LOAD_ARGS, ["transactionsPerSecondByWaitingRuns", "getRunViewP50Ms"]),
]


def _run(
    name: str, args: list[str], pg_admin_url: str, results: Path, report: str | None = None
) -> dict[str, Any]:
    env = {**os.environ, "SISU_BENCH_DATABASE_URL": pg_admin_url,
           "SISU_BENCH_RESULTS": str(results)}  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-m", f"bench.{name}", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    report = report or name
    result: dict[str, Any] = json.loads((results / f"{report}.json").read_text())
    assert result["benchmark"] == report and result["command"].startswith(f"python -m bench.{name}")
    assert result["machine"]["cores"] >= 1
    return result


@pytest.mark.parametrize(("name", "args", "figures"), SMOKE, ids=[s[0] for s in SMOKE])
def test_benchmark_harness(
    name: str, args: list[str], figures: list[str], pg_admin_url: str, tmp_path: Path
) -> None:
    result = _run(name, args, pg_admin_url, tmp_path)
    for figure in figures:
        assert result[figure] is not None, figure


@pytest.mark.timeout(900)  # ours and the ceiling, two shapes, each with its own processes
def test_shapes_benchmark_reports_every_figure_beside_its_ceiling(
    pg_admin_url: str, tmp_path: Path
) -> None:
    args = ["--shape", "1x3", "--shape", "2x3", "--repeat", "1"]
    result = _run("shapes", args, pg_admin_url, tmp_path)
    assert set(result["shapes"]) == {"1x3", "2x3"} and result["workers"] == 1
    _assert_every_figure(result)


@pytest.mark.timeout(900)
def test_shapes_benchmark_on_two_worker_processes(pg_admin_url: str, tmp_path: Path) -> None:
    args = ["--shape", "2x3", "--repeat", "1", "--workers", "2"]
    result = _run("shapes", args, pg_admin_url, tmp_path, report="shapes-2workers")
    assert set(result["shapes"]) == {"2x3"} and result["workers"] == 2
    assert result["command"].endswith("--workers 2")
    _assert_every_figure(result)


# CPU is read in clock ticks (10 ms): a few trivial workflows can use less than one
# tick of the server's time, so only a negative or missing CPU figure is wrong here.
CPU_FIGURES = {"workerCpuMsPerTask", "postgresCpuMsPerTask"}


def _assert_every_figure(result: dict[str, Any]) -> None:
    for shape in result["shapes"].values():
        assert shape["ratioToCeiling"] > 0
        for side in ("ours", "ceiling"):
            for figure in FIGURES:
                spread = shape[side][figure]
                assert spread["min"] <= spread["median"] <= spread["max"], (side, figure)
                floor_ok = spread["min"] >= 0 if figure in CPU_FIGURES else spread["min"] > 0
                assert floor_ok, (side, figure, spread)
        # Our worker runs ~15 ms of Python per task: it always spans a tick.
        assert shape["ours"]["workerCpuMsPerTask"]["max"] > 0
