"""Identity against real processes: `sisu keys create` turns auth on (auto), the manual's
flow runs with bearer keys, separation of duties holds, and the quorum counts people.

One stack on its own database serves the module: creating a key there must not switch
auth on for the session's shared stack.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from sisu_kodo.client import SisuClient
from sisu_kodo.contracts.intents import IntentCreate
from sisu_kodo.contracts.runs import RunStatus
from sisu_kodo.db import recipes
from sisu_kodo.db.engine import create_engine
from sisu_kodo.errors import SelfApprovalForbiddenError, UnauthenticatedError
from tests.fixtures.postgres import TestDatabases
from tests.fixtures.processes import Stack, running
from tests.fixtures.runs import ledger_counts, rows, scalar, wait_status
from tests.integration.test_manual_flow import run_manual

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def secured(databases: TestDatabases, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running(Stack(databases.create(), tmp_path_factory.mktemp("identity"))) as own:
        yield own


@pytest.fixture(scope="module")
def ledger(secured: Stack) -> Iterator[sa.Engine]:
    engine = create_engine(secured.database_url, pool_size=1)
    yield engine
    engine.dispose()


def create_key(stack: Stack, *args: str) -> str:
    """`sisu keys create ...`; the key is the one line on stdout."""
    done = subprocess.run(
        [sys.executable, "-m", "sisu_kodo.cli.main", "keys", "create", *args],
        env=stack.env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    key = done.stdout.strip()
    assert key.startswith("sk_") and key not in done.stderr
    return key


def key_id(key: str) -> str:
    return key.split("_")[1]


@pytest.fixture(scope="module")
def keys(secured: Stack) -> dict[str, str]:
    def make(name: str, *roles: str) -> str:
        flags = [flag for role in roles for flag in ("--role", role)]
        return create_key(secured, "--name", name, *flags, "--tenant", "tenant-alpha")

    return {
        "submitter": make("sam", "submitter"),
        "approver": make("ada", "approver"),
        "second": make("bo", "approver"),
        "both": make("cy", "submitter", "approver"),
    }


def test_after_a_key_an_anonymous_post_is_401_and_writes_only_an_audit_row(
    secured: Stack, ledger: sa.Engine, keys: dict[str, str]
) -> None:
    before = ledger_counts(ledger)
    audits = scalar(ledger, "SELECT COUNT(*) FROM app.audit_log")
    answer = httpx.post(f"{secured.base_url}/intents", json={"goal": "no key"})
    assert answer.status_code == 401
    assert answer.json()["code"] == "unauthenticated"
    assert answer.headers["www-authenticate"] == "Bearer"
    assert ledger_counts(ledger) == before
    assert scalar(ledger, "SELECT COUNT(*) FROM app.audit_log") == audits + 1
    last = rows(ledger, "SELECT * FROM app.audit_log ORDER BY id DESC LIMIT 1")[0]
    assert (last.principal, last.action, last.status) == ("anonymous", "POST /intents", 401)


MANUAL_WITH_KEYS = textwrap.dedent(
    r"""
    set -euo pipefail
    I=$(curl -sS -X POST $BASE/intents -H "Authorization: Bearer $KEY" \
      -d '{"goal":"build logic","inputs":{},"constraints":{}}' | jq -r .intentId)
    R=$(curl -sS -X POST $BASE/intents/$I/run -H "Authorization: Bearer $KEY" -d '{
      "recipeName":"sandbox-default",
      "queuePartitionKey":"tenant-alpha",
      "workload":{"concurrency":5,"steps":10}
    }' | jq -r .runId)
    echo "RUN=$R"
    for _ in $(seq 1 300); do
      S=$(curl -sS -H "Authorization: Bearer $KEY" $BASE/runs/$R \
        | jq -r '.status + "/" + .lastStep')
      [ "$S" = "waiting_input/DecideST" ] && break
      sleep 0.1
    done
    echo "GATE=$S"
    curl -sS -X POST $BASE/runs/$R/approve-plan -H "Authorization: Bearer $APPROVER" \
      -d '{"approvedBy":"ops-lead"}'
    echo
    for _ in $(seq 1 300); do
      S=$(curl -sS -H "Authorization: Bearer $KEY" $BASE/runs/$R | jq -r .status)
      [ "$S" = "succeeded" ] && break
      sleep 0.1
    done
    echo "END=$S"
    """
)


def test_manual_flow_with_a_submitter_and_a_different_approver(
    secured: Stack, ledger: sa.Engine, keys: dict[str, str], tmp_path: Path
) -> None:
    script = f"export KEY={keys['submitter']} APPROVER={keys['approver']}\n{MANUAL_WITH_KEYS}"
    done = run_manual(script, secured, tmp_path)
    assert "GATE=waiting_input/DecideST" in done.stdout
    assert "END=succeeded" in done.stdout
    run_id = done.stdout.split("RUN=")[1].split()[0]
    approval = rows(ledger, "SELECT * FROM app.plan_approvals WHERE run_id = :r", r=run_id)[0]
    assert (approval.key_id, approval.key_name, approval.decided_by) == (
        key_id(keys["approver"]),
        "ada",
        "ops-lead",
    )
    with SisuClient(secured.base_url, api_key=keys["submitter"]) as client:
        view = client.get_run(run_id)
    assert view.startedBy is not None and view.startedBy.name == "sam"
    assert view.approvals is not None and view.approvals.count == view.approvals.needed == 1
    assert view.approvals.approvers[0].principal.keyId == key_id(keys["approver"])


def _gate(client: SisuClient) -> str:
    run = client.submit("duties", partition="tenant-alpha", steps=2, concurrency=1)
    return wait_status(client, run.runId, RunStatus.WAITING_INPUT, timeout=60).runId


def test_self_approval_is_refused_and_writes_only_an_audit_row(
    secured: Stack, ledger: sa.Engine, keys: dict[str, str]
) -> None:
    with SisuClient(secured.base_url, api_key=keys["both"]) as client:
        run_id = _gate(client)
        before = ledger_counts(ledger)
        with pytest.raises(SelfApprovalForbiddenError):
            client.approve_plan(run_id, "cy")
        assert ledger_counts(ledger) == before
        denied = rows(ledger, "SELECT * FROM app.audit_log WHERE target = :r", r=run_id)
        assert [row.code for row in denied if row.status == 403] == ["self_approval_forbidden"]
        assert client.get_run(run_id).status is RunStatus.WAITING_INPUT


def test_a_recipe_may_allow_self_approval(
    secured: Stack, ledger: sa.Engine, keys: dict[str, str]
) -> None:
    with ledger.begin() as conn:
        recipes.set_spec(conn, name="compile-default", spec={"allowSelfApproval": True})
    with SisuClient(secured.base_url, api_key=keys["both"]) as client:
        run = client.submit(
            "own", partition="tenant-alpha", steps=2, concurrency=1, recipe="compile-default"
        )
        wait_status(client, run.runId, RunStatus.WAITING_INPUT)
        assert client.approve_plan(run.runId, "cy").status is RunStatus.QUEUED


def test_a_quorum_of_two_needs_two_distinct_approvers(
    secured: Stack, ledger: sa.Engine, keys: dict[str, str]
) -> None:
    with ledger.begin() as conn:
        recipes.set_spec(conn, name="sandbox-default", spec={"requiredApprovals": 2})
    try:
        with (
            SisuClient(secured.base_url, api_key=keys["submitter"]) as submitter,
            SisuClient(secured.base_url, api_key=keys["approver"]) as first,
            SisuClient(secured.base_url, api_key=keys["second"]) as second,
        ):
            run_id = _gate(submitter)
            assert first.approve_plan(run_id, "ada").status is RunStatus.WAITING_INPUT
            assert first.approve_plan(run_id, "ada again").status is RunStatus.WAITING_INPUT
            view = submitter.get_run(run_id)
            assert view.approvals is not None
            assert (view.approvals.count, view.approvals.needed) == (1, 2)
            assert second.approve_plan(run_id, "bo").status is RunStatus.QUEUED
            done = wait_status(submitter, run_id, RunStatus.SUCCEEDED)
            assert done.approvals is not None and done.approvals.count == 2
    finally:
        with ledger.begin() as conn:
            recipes.set_spec(conn, name="sandbox-default", spec={})


def test_revoked_and_expired_keys_are_401(
    secured: Stack, ledger: sa.Engine, keys: dict[str, str]
) -> None:
    revoked = create_key(secured, "--name", "gone", "--role", "viewer", "--tenant", "tenant-alpha")
    expired = create_key(
        secured, "--name", "old", "--role", "viewer", "--tenant", "t", "--expires", "1d"
    )
    done = subprocess.run(
        [sys.executable, "-m", "sisu_kodo.cli.main", "keys", "revoke", key_id(revoked)],
        env=secured.env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    with ledger.begin() as conn:
        conn.execute(
            sa.text(
                "UPDATE app.api_keys SET expires_at = now() - interval '1 second' WHERE id = :i"
            ),
            {"i": key_id(expired)},
        )
    before = ledger_counts(ledger)
    audits = scalar(ledger, "SELECT COUNT(*) FROM app.audit_log WHERE status = 401")
    for key in (revoked, expired):
        with (
            SisuClient(secured.base_url, api_key=key) as client,
            pytest.raises(UnauthenticatedError),
        ):
            client.create_intent(IntentCreate(goal="too late"))
    assert ledger_counts(ledger) == before
    assert scalar(ledger, "SELECT COUNT(*) FROM app.audit_log WHERE status = 401") == audits + 2
