"""Auth modes, tenants and the audit log, in-process against the real app on a real ledger.

Each test gets a database of its own: creating a key switches `auto` mode on there.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from sisu_kodo.api.routes.health import AUTH_OFF_WARNING
from sisu_kodo.db.engine import create_engine
from tests.fixtures.auth import api_client, bearer, make_key
from tests.fixtures.postgres import TestDatabases
from tests.fixtures.runs import ledger_counts, rows, scalar

pytestmark = pytest.mark.postgres

RUN = {"recipeName": "sandbox-default", "workload": {"concurrency": 1, "steps": 1}}
AUDIT_COUNT = "SELECT COUNT(*) FROM app.audit_log"


@pytest.fixture
def url(databases: TestDatabases) -> str:
    return databases.create()


@pytest.fixture
def ledger(url: str) -> Iterator[sa.Engine]:
    engine = create_engine(url, pool_size=1)
    yield engine
    engine.dispose()


@pytest.fixture
def api(url: str) -> Iterator[TestClient]:
    with api_client(url) as client:  # SISU_AUTH=auto on 127.0.0.1
        yield client


def _start(api: TestClient, key: str, **fields: object) -> dict[str, object]:
    intent = api.post("/intents", json={"goal": "tenants"}, headers=bearer(key))
    assert intent.status_code == 201, intent.text
    answer = api.post(
        f"/intents/{intent.json()['intentId']}/run", json=RUN | fields, headers=bearer(key)
    )
    return {**answer.json(), "http": answer.status_code}


def test_auto_mode_without_keys_is_open_and_warns(api: TestClient, ledger: sa.Engine) -> None:
    assert api.post("/intents", json={"goal": "no key needed"}).status_code == 201
    health = api.get("/healthz").json()
    assert AUTH_OFF_WARNING in health["warnings"] and "workers" in health
    audit = rows(ledger, "SELECT principal, action, status FROM app.audit_log")
    assert [tuple(row) for row in audit] == [("anonymous", "POST /intents", 201)]


def test_a_validation_error_with_auth_off_writes_nothing(
    api: TestClient, ledger: sa.Engine
) -> None:
    before = ledger_counts(ledger), scalar(ledger, AUDIT_COUNT)
    assert api.post("/intents", json={"goal": ""}).status_code == 400
    assert (ledger_counts(ledger), scalar(ledger, AUDIT_COUNT)) == before


def test_the_first_key_switches_auto_mode_on(api: TestClient, ledger: sa.Engine) -> None:
    with ledger.begin() as conn:
        key = make_key(conn, "viewer", tenants=("t",))
    before = ledger_counts(ledger), scalar(ledger, AUDIT_COUNT)
    denied = api.post("/intents", json={"goal": "anonymous"})
    assert denied.status_code == 401 and denied.headers["www-authenticate"] == "Bearer"
    assert ledger_counts(ledger) == before[0]
    assert scalar(ledger, AUDIT_COUNT) == before[1] + 1
    anonymous = api.get("/healthz").json()
    assert set(anonymous) == {"ok", "appVersion", "workerReady", "warnings"}
    assert "workers" in api.get("/healthz", headers=bearer(key)).json()


def test_a_wrong_secret_for_a_known_id_is_401(api: TestClient, ledger: sa.Engine) -> None:
    with ledger.begin() as conn:
        key = make_key(conn, "admin", tenants=("*",))
    forged = key[:-4] + ("AAAA" if not key.endswith("AAAA") else "BBBB")
    answer = api.get("/keys", headers=bearer(forged))
    assert answer.status_code == 401 and forged not in answer.text


def test_a_sole_tenant_key_defaults_the_partition_and_may_not_leave_it(
    api: TestClient, ledger: sa.Engine
) -> None:
    with ledger.begin() as conn:
        key = make_key(conn, "submitter", tenants=("tenant-a",))
    started = _start(api, key)
    assert started["http"] == 202
    partition = scalar(ledger, "SELECT queue_partition_key FROM app.runs")
    assert partition == "tenant-a"
    intent = api.post("/intents", json={"goal": "elsewhere"}, headers=bearer(key)).json()
    before = ledger_counts(ledger), scalar(ledger, AUDIT_COUNT)
    refused = api.post(
        f"/intents/{intent['intentId']}/run",
        json=RUN | {"queuePartitionKey": "tenant-b"},
        headers=bearer(key),
    )
    assert refused.status_code == 403 and refused.json()["code"] == "forbidden"
    assert ledger_counts(ledger) == before[0]
    assert scalar(ledger, AUDIT_COUNT) == before[1] + 1


def test_another_tenants_run_looks_exactly_like_a_missing_one(
    api: TestClient, ledger: sa.Engine
) -> None:
    with ledger.begin() as conn:
        alpha = make_key(conn, "submitter", tenants=("tenant-a",))
        beta = make_key(conn, "viewer", "operator", tenants=("tenant-b",))
    run_id = str(_start(api, alpha)["runId"])
    missing_id = "run_" + "0" * 32
    for path in ("", "/events", "/tasks"):
        theirs = api.get(f"/runs/{run_id}{path}", headers=bearer(beta))
        missing = api.get(f"/runs/{missing_id}{path}", headers=bearer(beta))
        assert theirs.status_code == missing.status_code == 404
        assert theirs.json() == missing.json() | {
            "message": missing.json()["message"].replace(missing_id, run_id),
            "details": {"runId": run_id},
        }
    assert api.post(f"/runs/{run_id}/cancel", headers=bearer(beta)).status_code == 404
    assert api.get(f"/runs/{run_id}", headers=bearer(alpha)).status_code == 200


def test_the_audit_log_refuses_update_delete_and_truncate(
    api: TestClient, ledger: sa.Engine
) -> None:
    assert api.post("/intents", json={"goal": "audited"}).status_code == 201
    for statement in (
        "UPDATE app.audit_log SET status = 200",
        "DELETE FROM app.audit_log",
        "TRUNCATE app.audit_log",
    ):
        with pytest.raises(sa.exc.DBAPIError, match="append-only"), ledger.begin() as conn:
            conn.execute(sa.text(statement))
    assert scalar(ledger, AUDIT_COUNT) == 1


def test_get_audit_filters_by_run_and_principal(api: TestClient, ledger: sa.Engine) -> None:
    with ledger.begin() as conn:
        submitter = make_key(conn, "submitter", tenants=("tenant-a",), name="sam")
        operator = make_key(conn, "operator", tenants=("tenant-a",))
    run_id = _start(api, submitter)["runId"]
    page = api.get("/audit", params={"runId": run_id}, headers=bearer(operator)).json()
    assert [(e["action"], e["principalName"]) for e in page["entries"]] == [
        ("POST /intents/{intent_id}/run", "sam")
    ]
    sam = submitter.split("_")[1]
    mine = api.get("/audit", params={"principal": sam}, headers=bearer(operator)).json()
    assert len(mine["entries"]) == 2 and mine["nextCursor"] is None
    assert api.get("/audit", headers=bearer(submitter)).status_code == 403
