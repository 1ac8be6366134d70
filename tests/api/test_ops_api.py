"""The ops API in-process against the real app on a real ledger, auth on: the run list and
its counts, cursor pages, bulk actions, step attempts, task filters, queues and workers.

Each test gets a database of its own; runs are started through the API by an admin key
(in tenant-a or tenant-b) and moved through statuses by the ledger's own transitions.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from sisu_kodo.contracts.plans import TaskSpec
from sisu_kodo.contracts.runs import NextAction, RunStatus, StepId
from sisu_kodo.db import run_tasks, runs, sandbox_runs, workers
from sisu_kodo.db.engine import create_engine
from tests.fixtures.auth import api_client, bearer, make_key
from tests.fixtures.ledger import finish_steps, move
from tests.fixtures.postgres import TestDatabases
from tests.fixtures.runs import ledger_counts, scalar

pytestmark = pytest.mark.postgres

A, B = "tenant-a", "tenant-b"
RUN = {"recipeName": "sandbox-default", "workload": {"concurrency": 1, "steps": 1}}


@dataclass
class Ops:
    api: TestClient
    ledger: sa.Engine
    root: dict[str, str]  # admin, every tenant
    reader_a: dict[str, str]  # viewer of tenant-a
    operator_a: dict[str, str]  # operator of tenant-a

    def start(self, tenant: str, goal: str = "build logic") -> str:
        intent = self.api.post("/intents", json={"goal": goal}, headers=self.root)
        assert intent.status_code == 201, intent.text
        started = self.api.post(
            f"/intents/{intent.json()['intentId']}/run",
            json=RUN | {"queuePartitionKey": tenant},
            headers=self.root,
        )
        assert started.status_code == 202, started.text
        run_id: str = started.json()["runId"]
        return run_id

    def get(self, path: str, headers: dict[str, str], **params: Any) -> Any:
        answer = self.api.get(path, params=params, headers=headers)
        assert answer.status_code == 200, answer.text
        return answer.json()

    def bulk(self, action: str, headers: dict[str, str], **body: Any) -> Any:
        answer = self.api.post(f"/runs/bulk/{action}", json=body, headers=headers)
        assert answer.status_code == 200, answer.text
        return answer.json()

    def status(self, run_id: str) -> RunStatus:
        with self.ledger.connect() as conn:
            return runs.require_run(conn, run_id=run_id).status


@pytest.fixture
def ops(databases: TestDatabases) -> Iterator[Ops]:
    url = databases.create()
    ledger = create_engine(url, pool_size=2)
    with api_client(url, SISU_AUTH="on") as api:
        with ledger.begin() as conn:
            root = make_key(conn, "admin", tenants=("*",))
            reader = make_key(conn, "viewer", tenants=(A,))
            operator = make_key(conn, "operator", tenants=(A,))
        yield Ops(api, ledger, bearer(root), bearer(reader), bearer(operator))
    ledger.dispose()


def ids(page: dict[str, Any]) -> list[str]:
    return [item["runId"] for item in page["items"]]


def test_a_tenant_key_never_sees_another_tenants_runs(ops: Ops) -> None:
    mine = [ops.start(A) for _ in range(2)]
    theirs = [ops.start(B) for _ in range(3)]
    assert sorted(ids(ops.get("/runs", ops.reader_a))) == sorted(mine)
    # Naming the other tenant does not open it: an empty page, not its runs.
    assert ids(ops.get("/runs", ops.reader_a, tenant=B)) == []
    assert ids(ops.get("/runs", ops.reader_a, q=theirs[0])) == []
    counts = ops.get("/runs/counts", ops.reader_a)
    assert counts["total"] == 2 and counts["statuses"]["queued"] == 2
    assert ops.get("/runs/counts", ops.root)["total"] == 5
    dry = ops.bulk("cancel", ops.operator_a)
    assert dry["matched"] == 2 and sorted(dry["firstIds"]) == sorted(mine)
    done = ops.bulk("cancel", ops.operator_a, dryRun=False, tenant=B)
    assert done["matched"] == 0 and done["outcomes"] == []
    done = ops.bulk("cancel", ops.operator_a, dryRun=False)
    assert sorted(o["runId"] for o in done["outcomes"]) == sorted(mine)
    assert {ops.status(run_id) for run_id in theirs} == {RunStatus.QUEUED}


def test_summaries_carry_goal_line_tenant_recipe_people_and_task_counts(ops: Ops) -> None:
    run_id = ops.start(A, goal="first line\nsecond line")
    with ops.ledger.begin() as conn:
        tasks = [
            TaskSpec.model_validate(
                {"taskKey": f"k{i}", "index": i, "name": f"t{i}", "command": "true", "timeoutMs": 1}
            )
            for i in range(3)
        ]
        run_tasks.record_tasks(conn, run_id=run_id, tasks=tasks)
        _attempt(conn, run_id, "k0", "NONE")
        _attempt(conn, run_id, "k1", "CMD_NONZERO")
    [item] = ops.get("/runs", ops.reader_a)["items"]
    assert item["goal"] == "first line" and item["tenant"] == A
    assert item["recipe"] == "sandbox-default" and item["status"] == "queued"
    assert item["startedBy"]["name"] == "admin-key" and item["approvedBy"] is None
    assert item["tasks"] == {"total": 3, "pending": 1, "retrying": 0, "succeeded": 1, "failed": 1}
    page = ops.get(f"/runs/{run_id}/tasks", ops.reader_a, status="failed")
    assert page["total"] == 1 and [t["taskKey"] for t in page["tasks"]] == ["k1"]
    assert page["tasks"][0]["errCode"] == "CMD_NONZERO"
    pending = ops.get(f"/runs/{run_id}/tasks", ops.reader_a, status="pending")
    assert [t["taskKey"] for t in pending["tasks"]] == ["k2"]


def test_a_finished_steps_tasks_filter_by_status_in_its_recorded_output(ops: Ops) -> None:
    run_id = ops.start(A)
    recorded = [
        {"taskKey": f"k{i}", "status": "failed" if i % 2 else "succeeded"} for i in range(5)
    ]
    with ops.ledger.begin() as conn:
        runs.start_step(conn, run_id=run_id, step_id=StepId.EXECUTE, phase="execution")
        runs.finish_step(
            conn, run_id=run_id, step_id=StepId.EXECUTE, output={"raw": {"tasks": recorded}}
        )
    page = ops.get(f"/runs/{run_id}/tasks", ops.reader_a, status="failed", offset=1, limit=5)
    assert page["total"] == 2 and [t["taskKey"] for t in page["tasks"]] == ["k3"]
    none = ops.get(f"/runs/{run_id}/tasks", ops.reader_a, status="retrying")
    assert none["total"] == 0 and none["tasks"] == []
    assert ops.get(f"/runs/{run_id}/tasks", ops.reader_a)["total"] == 5


def _attempt(conn: sa.Connection, run_id: str, task_key: str, err_code: str) -> None:
    sandbox_runs.record_attempt(
        conn,
        run_id=run_id,
        step_id=StepId.EXECUTE,
        task_key=task_key,
        attempt=1,
        attempt_offset=0,
        provider="mock",
        request={},
        response={"exitCode": 0 if err_code == "NONE" else 1},
        err_code=err_code,
        metrics={"wallMs": 5},
    )


def test_filters_status_query_order_and_time(ops: Ops) -> None:
    first = ops.start(A, goal="Deploy the 100% solution")
    second = ops.start(A, goal="other work")
    third = ops.start(A, goal="more work")
    move(ops.ledger, second, RunStatus.RUNNING, RunStatus.FAILED, next_action=NextAction.REPAIR)
    assert ids(ops.get("/runs", ops.reader_a)) == [third, second, first]
    assert ids(ops.get("/runs", ops.reader_a, order="oldest")) == [first, second, third]
    assert ids(ops.get("/runs", ops.reader_a, status="failed")) == [second]
    both = ops.get("/runs", ops.reader_a, status=["failed", "queued"])
    assert ids(both) == [third, second, first]
    assert ids(ops.get("/runs", ops.reader_a, q="100%")) == [first]  # % is literal
    assert ids(ops.get("/runs", ops.reader_a, q="WORK")) == [third, second]
    assert ids(ops.get("/runs", ops.reader_a, q=second)) == [second]
    assert ids(ops.get("/runs", ops.reader_a, recipe="other-recipe")) == []
    assert ids(ops.get("/runs", ops.reader_a, tenant="tenant a, or any text")) == []
    created = ops.get("/runs", ops.reader_a)["items"][1]["createdAt"]
    assert ids(ops.get("/runs", ops.reader_a, createdAfter=created)) == [third, second]
    assert ids(ops.get("/runs", ops.reader_a, createdBefore=created)) == [first]
    counts = ops.get("/runs/counts", ops.reader_a, q="work")
    assert counts["statuses"] == {s.value: 0 for s in RunStatus} | {"failed": 1, "queued": 1}


def test_answers_say_their_server_side_time(ops: Ops) -> None:
    answer = ops.api.get("/runs", headers=ops.reader_a)
    timing = answer.headers["server-timing"]
    assert timing.startswith("app;dur=") and float(timing.split("=", 1)[1]) >= 0


def test_cursor_pages_are_stable_while_runs_are_inserted(ops: Ops) -> None:
    before = [ops.start(A) for _ in range(7)]
    page = ops.get("/runs", ops.reader_a, limit=3)
    seen = ids(page)
    inserted = [ops.start(A) for _ in range(2)]
    while page["nextCursor"]:
        page = ops.get("/runs", ops.reader_a, limit=3, cursor=page["nextCursor"])
        seen += ids(page)
    assert seen == list(reversed(before))  # every run once, newest first, none inserted
    assert ids(ops.get("/runs", ops.reader_a, limit=2)) == list(reversed(inserted))


def test_bad_filters_are_400s_that_write_nothing(ops: Ops) -> None:
    ops.start(A)
    counts = ledger_counts(ops.ledger)
    audit = scalar(ops.ledger, "SELECT COUNT(*) FROM app.audit_log")
    for params in (
        {"cursor": "bm90LWEtY3Vyc29y"},  # base64 of "not-a-cursor"
        {"cursor": "!!"},
        {"status": "sleeping"},
        {"limit": 0},
        {"order": "sideways"},
        {"q": ""},
        {"createdAfter": "yesterday"},
    ):
        for path in ("/runs", "/runs/counts"):
            answer = ops.api.get(path, params=params, headers=ops.reader_a)
            assert answer.status_code == 400, (path, params, answer.text)
            assert answer.json()["code"] == "validation_error"
    for body in ({"cursor": "bm90LWEtY3Vyc29y", "dryRun": False}, {"limit": 5000}, {"x": 1}):
        answer = ops.api.post("/runs/bulk/cancel", json=body, headers=ops.operator_a)
        assert answer.status_code == 400, (body, answer.text)
    assert ledger_counts(ops.ledger) == counts
    assert scalar(ops.ledger, "SELECT COUNT(*) FROM app.audit_log") == audit


def test_bulk_cancel_dry_run_counts_before_it_acts(ops: Ops) -> None:
    targets = [ops.start(A) for _ in range(3)]
    dry = ops.bulk("cancel", ops.operator_a, status=["queued"])
    assert dry["dryRun"] is True and dry["matched"] == 3 and dry["acted"] == 0
    assert dry["firstIds"] == list(reversed(targets))
    assert {ops.status(run_id) for run_id in targets} == {RunStatus.QUEUED}
    bulk_rows = "SELECT COUNT(*) FROM app.audit_log WHERE action LIKE '%/bulk/%'"
    assert scalar(ops.ledger, bulk_rows) == 0  # a dry run changes nothing, so audits nothing
    # A bulk limit may exceed a page's (200): it caps the runs acted on, not a page.
    assert ops.bulk("cancel", ops.operator_a, limit=1000)["matched"] == 3
    done = ops.bulk("cancel", ops.operator_a, status=["queued"], dryRun=False, limit=2)
    assert done["matched"] == 3 and done["acted"] == 2 and done["succeeded"] == 2
    assert {ops.status(run_id) for run_id in targets[1:]} == {RunStatus.CANCELED}
    assert ops.status(targets[0]) is RunStatus.QUEUED
    audited = scalar(
        ops.ledger,
        "SELECT array_agg(target ORDER BY target) FROM app.audit_log"
        " WHERE action = 'POST /runs/bulk/cancel' AND status = 202",
    )
    assert audited == sorted(targets[1:])


def test_bulk_reports_each_runs_failure(ops: Ops) -> None:
    queued = ops.start(A)
    failed = ops.start(A)
    canceled = ops.start(A)
    move(ops.ledger, failed, RunStatus.RUNNING, RunStatus.FAILED, next_action=NextAction.REPAIR)
    move(ops.ledger, canceled, RunStatus.CANCELED)
    done = ops.bulk("retry", ops.operator_a, dryRun=False)
    outcomes = {o["runId"]: o for o in done["outcomes"]}
    assert done["acted"] == 3 and done["succeeded"] == 1 and done["failed"] == 2
    assert outcomes[failed]["ok"] is True and outcomes[failed]["status"] == "queued"
    for refused in (queued, canceled):
        assert outcomes[refused]["ok"] is False and outcomes[refused]["code"] == "illegal_state"
        assert refused in outcomes[refused]["message"]
    assert ops.status(canceled) is RunStatus.CANCELED
    audited = scalar(
        ops.ledger, "SELECT array_agg(target) FROM app.audit_log WHERE action LIKE '%bulk%'"
    )
    assert audited == [failed]  # a refused run writes nothing, not even its audit row


def test_a_reader_may_not_act_in_bulk(ops: Ops) -> None:
    run_id = ops.start(A)
    answer = ops.api.post("/runs/bulk/cancel", json={"dryRun": False}, headers=ops.reader_a)
    assert answer.status_code == 403 and answer.json()["code"] == "forbidden"
    assert ops.status(run_id) is RunStatus.QUEUED


def test_steps_list_every_attempt_with_timings(ops: Ops) -> None:
    run_id = ops.start(A)
    finish_steps(ops.ledger, run_id, StepId.COMPILE)
    with ops.ledger.begin() as conn:
        runs.start_step(conn, run_id=run_id, step_id=StepId.COMPILE, phase="compilation")
    steps = ops.get(f"/runs/{run_id}/steps", ops.reader_a)["steps"]
    assert [(s["stepId"], s["attempt"]) for s in steps] == [
        ("CompileST", 1),
        ("DecideST", 1),
        ("CompileST", 2),
    ]
    assert steps[0]["finishedAt"] is not None and steps[0]["durationMs"] >= 0
    assert steps[1]["finishedAt"] is None and steps[1]["durationMs"] is None
    other = ops.start(B)
    hidden = ops.api.get(f"/runs/{other}/steps", headers=ops.reader_a)
    assert hidden.status_code == 404 and hidden.json()["code"] == "not_found"


def test_queues_show_only_the_keys_partitions(ops: Ops) -> None:
    ops.start(A)
    ops.start(A)
    ops.start(B)
    board = ops.get("/queues", ops.reader_a)
    intent_q = next(queue for queue in board["queues"] if queue["name"] == "intentQ")
    assert [p["partition"] for p in intent_q["partitions"]] == [A]
    [partition] = intent_q["partitions"]
    assert partition["enqueued"] == 2 and partition["running"] == 0
    assert partition["concurrency"] == intent_q["partitionConcurrency"] >= 1
    everything = ops.get("/queues", ops.root)
    intent_all = next(queue for queue in everything["queues"] if queue["name"] == "intentQ")
    assert intent_all["enqueued"] == 3


def test_workers_board_shows_live_and_dead_with_heartbeat_age(ops: Ops) -> None:
    with ops.ledger.begin() as conn:
        for name in ("w-live", "w-dead"):
            workers.register(conn, executor_id=name, app_version="v1", pid=7, hostname="h")
        conn.execute(
            sa.text(
                "UPDATE app.workers SET heartbeat_at = now() - interval '1 hour'"
                " WHERE executor_id = 'w-dead'"
            )
        )
    board = ops.get("/workers", ops.reader_a)
    assert board["live"] == 1 and board["dead"] == 1
    by_id = {worker["executorId"]: worker for worker in board["workers"]}
    assert by_id["w-live"]["alive"] and not by_id["w-dead"]["alive"]
    assert by_id["w-dead"]["heartbeatAgeSeconds"] >= 3600 > by_id["w-live"]["heartbeatAgeSeconds"]
    assert by_id["w-live"]["tasksInFlight"] == 0 and by_id["w-live"]["pid"] == 7
