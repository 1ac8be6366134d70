"""The ops manual's L01-L03 and section 3 oracles, run verbatim against real processes."""

from __future__ import annotations

import json
import shutil
import subprocess
import textwrap
from pathlib import Path

import pytest
import sqlalchemy as sa

from sisu_kodo.client import SisuClient
from sisu_kodo.contracts.runs import NextAction, RunStatus
from tests.fixtures.processes import Stack
from tests.fixtures.runs import rows, run_to_end, scalar, wait_status

pytestmark = pytest.mark.integration

# Manual section 1, verbatim, with the polling the manual describes in prose.
MANUAL_L01_L03 = textwrap.dedent(
    r"""
    set -euo pipefail
    # 1. Create Intent
    I=$(curl -sS -X POST $BASE/intents -d '{"goal":"build logic","inputs":{},"constraints":{}}' | jq -r .intentId)

    # 2. Trigger Run (with Partitioning)
    R=$(curl -sS -X POST $BASE/intents/$I/run -d '{
      "recipeName":"sandbox-default",
      "queuePartitionKey":"tenant-alpha",
      "workload":{"concurrency":5,"steps":10}
    }' | jq -r .runId)
    echo "RUN=$R"

    # Poll /runs/$R until status == 'waiting_input' and lastStep == 'DecideST'
    for _ in $(seq 1 300); do
      S=$(curl -sS $BASE/runs/$R | jq -r '.status + "/" + .lastStep')
      [ "$S" = "waiting_input/DecideST" ] && break
      sleep 0.1
    done
    echo "GATE=$S"
    curl -sS "$BASE/artifacts/$(jq -rn --arg u "artifact://run/$R/step/CompileST/task/default/plan_card" '$u|@uri')" > plan.json

    curl -sS -X POST $BASE/runs/$R/approve-plan -d '{"approvedBy":"ops-lead"}'
    echo
    for _ in $(seq 1 300); do
      S=$(curl -sS $BASE/runs/$R | jq -r .status)
      [ "$S" = "succeeded" ] && break
      sleep 0.1
    done

    # Watch live status events
    curl -sS $BASE/runs/$R/events > events.json # Phase transitions
    # View terminal projection (RunView)
    curl -sS $BASE/runs/$R | jq '.steps[] | select(.stepId=="ExecuteST") .output.raw.tasks' > tasks.json
    """
)


def run_manual(script: str, stack: Stack, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run the manual's shell lines with BASE pointing at the stack, as an operator would."""
    for tool in ("curl", "jq", "bash"):
        assert shutil.which(tool), f"the manual's commands need {tool} on PATH"
    done = subprocess.run(
        ["bash", "-c", script],
        env={"BASE": stack.base_url, "PATH": "/usr/bin:/bin:/usr/local/bin"},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done


def test_manual_l01_to_l03_verbatim_with_curl_and_jq(
    stack: Stack, db: sa.Engine, tmp_path: Path
) -> None:
    done = run_manual(MANUAL_L01_L03, stack, tmp_path)
    run_id = done.stdout.split("RUN=")[1].split()[0]
    assert "GATE=waiting_input/DecideST" in done.stdout
    assert '"accepted":true' in done.stdout

    plan = json.loads((tmp_path / "plan.json").read_text())
    assert plan["goal"] == "build logic"
    assert len(plan["tasks"]) == 10

    events = json.loads((tmp_path / "events.json").read_text())
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    types = [e["type"] for e in events]
    assert types[0] == "run.queued" and types[-1] == "run.succeeded"
    assert types.index("gate.opened") < types.index("plan.approved")

    tasks = json.loads((tmp_path / "tasks.json").read_text())
    assert len(tasks) == 10
    assert {t["status"] for t in tasks} == {"succeeded"}
    assert all(t["errCode"] == "NONE" and t["exitCode"] == 0 for t in tasks)
    assert len({t["taskKey"] for t in tasks}) == 10
    assert all(t["sandboxRef"] and t["wallMs"] is not None and t["artifacts"] for t in tasks)

    # Section 3: SBX execution and metrics, verbatim with $R substituted.
    sbx = rows(
        db,
        f"""
        SELECT
          task_key,
          err_code,
          (metrics->>'wallMs')::int as latency,
          response->>'sandboxRef' as sbx
        FROM app.sbx_runs
        WHERE run_id = '{run_id}'
        ORDER BY created_at;
        """,
    )
    assert len(sbx) == 10
    assert all(r.err_code == "NONE" and r.latency >= 0 and r.sbx.startswith("mock-") for r in sbx)

    fairness = rows(
        db,
        """
        SELECT
          queue_partition_key,
          status,
          COUNT(*)
        FROM dbos.workflow_status
        WHERE queue_name = 'sbxQ'
        GROUP BY 1, 2;
        """,
    )
    assert ("tenant-alpha", "SUCCESS") in {(r[0], r[1]) for r in fairness}
    assert sum(r[2] for r in fairness if r[0] == "tenant-alpha") >= 10

    bad_hashes = rows(
        db,
        """
        SELECT uri, sha256
        FROM app.artifacts
        WHERE sha256 !~ '^[0-9a-f]{64}$';
        """,
    )
    assert bad_hashes == []
    assert scalar(db, "SELECT COUNT(*) FROM app.mock_receipts WHERE seen_count > 1;") == 0
    # "Only per-attempt": a task_key appears more than once only for separate attempts.
    repeated = rows(
        db, "SELECT task_key, COUNT(*) FROM app.sbx_runs GROUP BY 1 HAVING COUNT(*) > 1;"
    )
    for task_key, count in repeated:
        distinct = scalar(
            db, "SELECT COUNT(DISTINCT attempt) FROM app.sbx_runs WHERE task_key = :k", k=task_key
        )
        assert distinct == count
    assert not {r[0] for r in repeated} & {r.task_key for r in sbx}


def test_artifact_sha256_matches_content_and_etag(
    client: SisuClient, stack: Stack, db: sa.Engine
) -> None:
    import hashlib
    from urllib.parse import quote

    import httpx

    run = run_to_end(client, steps=2)
    assert run.status is RunStatus.SUCCEEDED
    plan_ref = next(a for a in run.artifacts if a.kind == "plan_card")
    response = httpx.get(f"{stack.base_url}/artifacts/{quote(plan_ref.uri, safe='')}")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    assert hashlib.sha256(response.content).hexdigest() == plan_ref.sha256
    assert response.headers["etag"] == f'"{plan_ref.sha256}"'
    cached = httpx.get(
        f"{stack.base_url}/artifacts/{quote(plan_ref.uri, safe='')}",
        headers={"If-None-Match": response.headers["etag"]},
    )
    assert cached.status_code == 304
    stored = scalar(db, "SELECT sha256 FROM app.artifacts WHERE uri = :u", u=plan_ref.uri)
    assert stored == plan_ref.sha256


def test_run_view_shape_and_step_records(client: SisuClient, db: sa.Engine) -> None:
    run = run_to_end(client, steps=4, concurrency=2)
    assert run.status is RunStatus.SUCCEEDED
    assert run.lastStep == "ExecuteST" and run.nextAction is NextAction.NONE
    assert run.error is None and run.retryCount == 0
    assert [s.stepId for s in run.steps] == ["CompileST", "DecideST", "ExecuteST"]
    assert [s.phase for s in run.steps] == ["compilation", "planning", "execution"]
    assert all(s.startedAt and s.finishedAt and s.attempt == 1 for s in run.steps)
    decide = run.steps[1].output
    assert decide is not None and decide["taskCount"] == 4
    approval = rows(db, "SELECT * FROM app.plan_approvals WHERE run_id = :r", r=run.runId)
    assert len(approval) == 1
    assert approval[0].decision == "approved"
    assert approval[0].tasks_sha256 == decide["tasksSha256"]
    assert approval[0].plan_sha256 == decide["planSha256"]
    assert wait_status(client, run.runId, RunStatus.SUCCEEDED).status is RunStatus.SUCCEEDED


# Manual section 2, "Infra Outage Recovery", with the retry line verbatim.
MANUAL_RETRY = textwrap.dedent(
    r"""
    set -euo pipefail
    I=$(curl -sS -X POST $BASE/intents -d '{"goal":"please fail me","inputs":{},"constraints":{}}' | jq -r .intentId)
    R=$(curl -sS -X POST $BASE/intents/$I/run -d '{"recipeName":"sandbox-default","queuePartitionKey":"tenant-alpha","workload":{"concurrency":2,"steps":3}}' | jq -r .runId)
    echo "RUN=$R"
    for _ in $(seq 1 300); do [ "$(curl -sS $BASE/runs/$R | jq -r .status)" = waiting_input ] && break; sleep 0.1; done
    curl -sS -X POST $BASE/runs/$R/approve-plan -d '{"approvedBy":"ops-lead"}' > /dev/null
    for _ in $(seq 1 300); do [ "$(curl -sS $BASE/runs/$R | jq -r .status)" = retries_exceeded ] && break; sleep 0.1; done
    curl -sS $BASE/runs/$R | jq -c '{status, nextAction}'
    curl -sS -X POST $BASE/runs/$R/retry | jq # Returns same runId, resumes from failed step
    """
)


def test_manual_infra_outage_retry_verbatim(stack: Stack, tmp_path: Path) -> None:
    done = run_manual(MANUAL_RETRY, stack, tmp_path)
    run_id = done.stdout.split("RUN=")[1].split()[0]
    assert '{"status":"retries_exceeded","nextAction":"REPAIR"}' in done.stdout
    retry = json.loads(done.stdout[done.stdout.index("{\n") :])
    assert retry["runId"] == run_id
    assert retry["fromStep"] == "ExecuteST" and retry["retryCount"] == 1


def test_large_runs_are_summarised_with_a_paginated_task_list(
    client: SisuClient, stack: Stack
) -> None:
    import httpx

    run = run_to_end(client, steps=130, concurrency=32)
    assert run.status is RunStatus.SUCCEEDED
    execute = next(s for s in run.steps if s.stepId == "ExecuteST")
    assert execute.output is not None
    raw = execute.output["raw"]
    assert len(raw["tasks"]) == 100 and raw["tasksTruncated"] is True
    assert raw["taskCount"] == 130 and raw["tasksUri"] == f"/runs/{run.runId}/tasks"
    assert execute.output["taskCount"] == 130 and execute.output["succeeded"] == 130
    page = httpx.get(f"{stack.base_url}{raw['tasksUri']}", params={"offset": 100, "limit": 50})
    body = page.json()
    assert page.status_code == 200 and body["total"] == 130 and len(body["tasks"]) == 30
    keys = [t["taskKey"] for t in raw["tasks"]] + [t["taskKey"] for t in body["tasks"]]
    assert len(set(keys)) == 130
    assert [t["index"] for t in body["tasks"]] == list(range(101, 131))
    bad = httpx.get(f"{stack.base_url}{raw['tasksUri']}", params={"limit": 5000})
    assert bad.status_code == 400 and bad.json()["code"] == "validation_error"
