"""Render bench/results/shapes.json (and shapes-before.json, if present) as one table per shape.

Each table has a row for ours, the raw-DBOS ceiling and their ratio; with a "before"
document its three rows come first, so before/after figures sit in the same table.
Used by bench/report.py.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

AFTER = "shapes.json"
BEFORE = "shapes-before.json"
TWO_WORKERS = "shapes-2workers.json"  # `--workers 2`: the same shapes on two worker processes
COLUMNS = {
    "tasksPerSecond": "tasks/s",
    "workerCpuMsPerTask": "worker CPU ms/task",
    "postgresCpuMsPerTask": "PostgreSQL CPU ms/task",
    "transactionsPerTask": "transactions/task",
}
INTRO = (
    "Ours: R runs of N zero-work tasks on R partitions, approved together, first approval to"
    " last `succeeded`. Ceiling: raw DBOS, R partitions x N trivial workflows, no parent and"
    " no per-child steps, same concurrency and polling. Cells: median (min-max) over the"
    " repeats; the ratio row divides medians. Worker CPU is the processes running workflows"
    " (both, with two worker processes)."
)


def _load(path: Path) -> dict[str, Any] | None:
    return json.loads(path.read_text()) if path.exists() else None


def _number(value: float) -> str:
    return f"{value:,.3g}" if abs(value) < 100 else f"{value:,.0f}"


def _cell(figure: dict[str, float]) -> str:
    return f"{_number(figure['median'])} ({_number(figure['min'])}-{_number(figure['max'])})"


def _row(label: str, cells: list[str]) -> str:
    return f"| {label} | " + " | ".join(cells) + " |"


def _rows(shape: dict[str, Any], label: str) -> list[str]:
    ours, ceiling = shape["ours"], shape["ceiling"]
    ratios = [
        _number(ours[key]["median"] / ceiling[key]["median"]) if ceiling[key]["median"] else "-"
        for key in COLUMNS
    ]
    prefix = f"{label}: " if label else ""
    return [
        _row(f"{prefix}ours", [_cell(ours[key]) for key in COLUMNS]),
        _row(f"{prefix}ceiling", [_cell(ceiling[key]) for key in COLUMNS]),
        _row(f"{prefix}ours / ceiling", ratios),
    ]


def _table(
    name: str, after: dict[str, Any], before: dict[str, Any] | None, two: dict[str, Any] | None
) -> str:
    runs, _, tasks = name.partition("x")
    header = _row("", list(COLUMNS.values())) + "\n|" + " --- |" * (len(COLUMNS) + 1)
    rows = []
    if before and name in before["shapes"]:
        rows += _rows(before["shapes"][name], "before")
    rows += _rows(after["shapes"][name], "after" if before else "")
    if two and name in two["shapes"]:
        rows += _rows(two["shapes"][name], "after, 2 worker processes")
    return f"### {name}: {runs} x {tasks} tasks\n\n{header}\n" + "\n".join(rows) + "\n"


def _provenance(label: str, document: dict[str, Any]) -> str:
    machine = document["machine"]
    return (
        f"{label}`{document['command']}`: {machine['cores']} cores, {machine['memoryGiB']} GiB,"
        f" Python {machine['python']}, {machine['date']}; PostgreSQL: {document['postgres']}."
    )


def render(results: Path) -> str | None:
    """The `## shapes` section, or None before the benchmark has been run."""
    after, before = _load(results / AFTER), _load(results / BEFORE)
    two = _load(results / TWO_WORKERS)
    if after is None:
        return None
    lines = [_provenance("Before: ", before)] if before else []
    lines.append(_provenance("After: " if before else "", after))
    if two:
        lines.append(_provenance("Two worker processes: ", two))
    tables = "\n".join(_table(name, after, before, two) for name in after["shapes"])
    return f"## shapes\n\n{INTRO}\n\n" + "\n\n".join(lines) + f"\n\n{tables}"
