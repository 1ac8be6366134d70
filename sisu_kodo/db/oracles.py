"""The ops manual's SQL oracles (sections 2 and 3), evaluated for one run.

"Bypass logs; trust the ledger": each oracle is a query whose answer proves a promise
(no side effect twice, only per-attempt repeats, sha256 everywhere, metrics recorded,
partitioning honoured). `sisu oracle` and `sisu chaos` print them as a pass/fail table.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import sqlalchemy as sa

from sisu_kodo.db import approvals, executions, runs, sandbox_attempts


@dataclass(frozen=True)
class OracleResult:
    name: str
    passed: bool
    detail: str


def check_run(
    conn: sa.Connection, *, run_id: str, expect_success: bool = True, schema: str = "dbos"
) -> list[OracleResult]:
    run = runs.require_run(conn, run_id=run_id)
    results = [
        _receipts_once(conn),
        _sbx_repeats_are_attempts(conn),
        _artifact_hashes(conn, run_id),
        _metrics_recorded(conn, run_id),
        _attempts_accounted(conn, run_id, ended=run.status.terminal),
        _partitioned(conn, run_id, run.queue_partition_key, schema),
    ]
    if expect_success:
        results.append(
            OracleResult(
                "run succeeded",
                run.status.value == "succeeded",
                f"status {run.status.value}" + (f": {run.error}" if run.error else ""),
            )
        )
        results.append(_every_task_once(conn, run_id))
    return results


def _receipts_once(conn: sa.Connection) -> OracleResult:
    # Manual: SELECT COUNT(*) FROM app.mock_receipts WHERE seen_count > 1; -- MUST BE 0
    count = conn.execute(
        sa.text("SELECT COUNT(*) FROM app.mock_receipts WHERE seen_count > 1")
    ).scalar_one()
    return OracleResult(
        "no side effect twice (mock_receipts.seen_count > 1 = 0)",
        count == 0,
        f"{count} receipt(s) seen more than once",
    )


def _sbx_repeats_are_attempts(conn: sa.Connection) -> OracleResult:
    # Manual: SELECT task_key, COUNT(*) FROM app.sbx_runs GROUP BY 1 HAVING COUNT(*) > 1;
    rows = conn.execute(
        sa.text(
            "SELECT task_key, COUNT(*), COUNT(DISTINCT attempt) FROM app.sbx_runs"
            " GROUP BY 1 HAVING COUNT(*) > 1"
        )
    ).all()
    bad = [row[0] for row in rows if row[1] != row[2]]
    return OracleResult(
        "task_key repeats only per attempt (sbx_runs)",
        not bad,
        f"{len(rows)} task(s) with several attempts, {len(bad)} with a repeated attempt",
    )


def _artifact_hashes(conn: sa.Connection, run_id: str) -> OracleResult:
    # Manual: SELECT uri, sha256 FROM app.artifacts WHERE sha256 !~ '^[0-9a-f]{64}$';
    malformed = conn.execute(
        sa.text("SELECT COUNT(*) FROM app.artifacts WHERE sha256 !~ '^[0-9a-f]{64}$'")
    ).scalar_one()
    mismatched = sum(
        1
        for digest, content in conn.execute(
            sa.text("SELECT sha256, content FROM app.artifacts WHERE run_id = :r"), {"r": run_id}
        )
        if hashlib.sha256(bytes(content)).hexdigest() != digest
    )
    return OracleResult(
        "artifacts carry a real 64-hex sha256 of their bytes",
        malformed == 0 and mismatched == 0,
        f"{malformed} malformed, {mismatched} not matching their content",
    )


def _metrics_recorded(conn: sa.Connection, run_id: str) -> OracleResult:
    # Manual section 3: task_key, err_code, (metrics->>'wallMs')::int, response->>'sandboxRef'
    total, missing = conn.execute(
        sa.text(
            "SELECT COUNT(*), COUNT(*) FILTER (WHERE metrics->>'wallMs' IS NULL"
            " OR response->>'sandboxRef' IS NULL OR err_code IS NULL)"
            " FROM app.sbx_runs WHERE run_id = :r"
        ),
        {"r": run_id},
    ).one()
    return OracleResult(
        "every attempt has errCode, wallMs and sandboxRef",
        missing == 0,
        f"{total} attempt(s), {missing} incomplete",
    )


def _attempts_accounted(conn: sa.Connection, run_id: str, *, ended: bool) -> OracleResult:
    # Every attempt started (sbx_attempts) has exactly one outcome (sbx_runs), and no
    # attempt number repeats: a task's attempts are numbered 1..n, each once. While the
    # run goes on, attempts without an outcome yet are in flight.
    count = sandbox_attempts.account(conn, run_id=run_id)
    in_flight = count.unrecorded if not ended else 0
    return OracleResult(
        "every started attempt has one outcome, no attempt number repeats",
        count.unstarted == 0 and count.misnumbered == 0 and count.unrecorded == in_flight,
        f"{count.started} started, {count.recorded} recorded, {in_flight} in flight,"
        f" {count.unrecorded - in_flight} without an outcome, {count.unstarted} never started,"
        f" {count.misnumbered} task(s) misnumbered",
    )


def _partitioned(conn: sa.Connection, run_id: str, partition: str, schema: str) -> OracleResult:
    keys = [task.taskKey for task in executions.decided_tasks(conn, run_id=run_id)]
    if not keys:
        return OracleResult("sbxQ tasks carry the run's partition key", True, "no tasks yet")
    rows = conn.execute(
        sa.text(
            f'SELECT queue_partition_key, COUNT(*) FROM "{schema}".workflow_status'
            " WHERE queue_name = 'sbxQ' AND workflow_uuid LIKE ANY(:patterns) GROUP BY 1"
        ),
        {"patterns": [f"task-{key}%" for key in keys]},
    ).all()
    others = {key: n for key, n in rows if key != partition}
    return OracleResult(
        f"sbxQ tasks carry the run's partition key ({partition})",
        not others,
        f"{sum(n for _, n in rows)} task workflow(s); other keys: {others or 'none'}",
    )


def _every_task_once(conn: sa.Connection, run_id: str) -> OracleResult:
    tasks = executions.decided_tasks(conn, run_id=run_id)
    successes: dict[str, int] = dict(
        conn.execute(
            sa.text(
                "SELECT task_key, COUNT(*) FROM app.sbx_runs WHERE run_id = :r"
                " AND err_code = 'NONE' GROUP BY 1"
            ),
            {"r": run_id},
        ).all()
    )
    receipts: dict[str, int] = dict(
        conn.execute(
            sa.text("SELECT task_key, seen_count FROM app.mock_receipts WHERE run_id = :r"),
            {"r": run_id},
        ).all()
    )
    # A subset approval: the approved tasks exactly once, the others (skipped) never.
    approved = approvals.read_approved_tasks(conn, run_id=run_id).keys
    due = {task.taskKey for task in tasks} if approved is None else set(approved)
    wrong = [
        task.name
        for task in tasks
        if (successes.get(task.taskKey), receipts.get(task.taskKey))
        != ((1, 1) if task.taskKey in due else (None, None))
    ]
    return OracleResult(
        "every approved task succeeded exactly once",
        bool(tasks) and not wrong,
        f"{len(tasks)} task(s); not exactly once: {', '.join(wrong[:5]) or 'none'}",
    )
