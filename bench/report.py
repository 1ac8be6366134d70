"""Render docs/benchmarks.md from bench/results/*.json (the figures are never typed by hand).

bench/results/shapes.json is rendered by bench/shapes_table.py, next to shapes-before.json
when that exists (before/after rows in one table per shape).

python -m bench.report
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench import shapes_table

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
DOC = ROOT / "docs" / "benchmarks.md"

REFERENCE = {
    "fanout": "TypeScript reference: 100 tasks in 2.3 s at best (43 tasks/s; 11.3 s with "
    "defaults); 1,000 tasks over 10 runs in 7.6 s (132 tasks/s). Target: 3x its "
    "throughput; at least 0.5 of raw DBOS.",
    "latency": "TypeScript reference: intent POST -> waiting_input 943 ms median; approval -> "
    "succeeded (1 task) 1,064 ms median. Target: under 250 ms p50.",
    "api_load": "The RunView of a large run stays small: its first 100 tasks, and "
    "GET /runs/{id}/tasks for the rest.",
    "recovery": "Restart: DBOS recovers the executor's own work at launch. Takeover: the "
    "recovery sweep, bounded by SISU_HEARTBEAT_TTL_SECONDS (4 s here, 10 s by default).",
    "fairness": "Target: B's task start delay small and independent of A's backlog.",
    "idle_load": "Target: 100 runs waiting on long tasks add well under 50 transactions/s in"
    " all, and the RunView of an executing 10,000-task run stays fast. The before column"
    " is the same command on the code before task notices and app.run_tasks (20 ms status"
    " polling per waiting run; the view loaded the whole task list).",
    "console_load": "The console's pages under a bounded load (threads clients at once);"
    " server* figures are the API's own Server-Timing, p50Ms/p99Ms add the loopback round"
    " trip. Pages: the runs page with 10,000 runs in the ledger (filters,"
    " counts per status, the approvals badge: four queries and a template), the approvals"
    " inbox, and a 10,000-task run's page (plan card, header, one page of 50 tasks, the"
    " timeline) and its once-a-second live part. Auth off (no key lookups). Target: every"
    " page p50 well under the 1 s the live parts refresh at.",
    "run_list": "Target: GET /runs answers in under 300 ms p50 server-side with 10,000 runs."
    " server* figures are the API's own Server-Timing; p50Ms/p99Ms add the loopback round"
    " trip under the bounded load (threads clients at once).",
    "scale": "TypeScript reference: worker peak RSS 163-265 MB after 1,000-2,000 tasks; at most "
    "100 tasks per run. Target: flat memory, no per-run cap below 10,000.",
}


def _load(name: str) -> dict[str, Any] | None:
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.3g}" if abs(value) < 10 else f"{value:,.1f}"
    if isinstance(value, dict):
        if "median" in value:
            return (
                f"median {_fmt(value['median'])} (min {_fmt(value['min'])}, "
                f"max {_fmt(value['max'])}, {value['runs']} runs)"
            )
        return ", ".join(f"{key} {_fmt(item)}" for key, item in value.items())
    return str(value)


def render(narrative: str) -> str:
    sections = []
    for name, reference in REFERENCE.items():
        result = _load(name)
        if result is None:
            continue
        machine = result.pop("machine")
        command = result.pop("command")
        result.pop("benchmark")
        before = _load(f"{name}-before")
        if before is None:
            table = "| figure | value |\n| --- | --- |\n" + "\n".join(
                f"| {key} | {_fmt(value)} |" for key, value in result.items()
            )
        else:
            table = "| figure | before | after |\n| --- | --- | --- |\n" + "\n".join(
                f"| {key} | {_fmt(before.get(key, '-'))} | {_fmt(value)} |"
                for key, value in result.items()
            )
            table += f"\n\nBefore: measured {before['machine']['date']}."
        sections.append(
            f"## {name}\n\n`{command}`\n\n{reference}\n\n{table}\n\nMachine: "
            f"{machine['cores']} cores, {machine['memoryGiB']} GiB, "
            f"Python {machine['python']}, {machine['date']}.\n"
        )
    shapes = shapes_table.render(RESULTS)
    if shapes is not None:
        sections.append(shapes)
    return narrative + "\n" + "\n".join(sections)


def main() -> None:
    narrative = (ROOT / "bench" / "NARRATIVE.md").read_text()
    DOC.write_text(render(narrative))
    print(f"wrote {DOC}")


if __name__ == "__main__":
    main()
