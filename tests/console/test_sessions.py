"""The console's session and CSRF, in-process on a real ledger: the cookie's attributes,
a forged or tampered request refused with nothing written but its audit row, logins
audited, a revoked key's session ended, and auth off shown, not hidden."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from sisu_kodo.auth import revoke_key
from sisu_kodo.db.engine import create_engine
from tests.fixtures.auth import api_client, make_key
from tests.fixtures.console import console_login, csrf_of
from tests.fixtures.postgres import TestDatabases
from tests.fixtures.runs import ledger_counts, scalar

pytestmark = pytest.mark.postgres


@pytest.fixture(scope="module")
def engine(databases: TestDatabases) -> Iterator[sa.Engine]:
    engine = create_engine(databases.create(), pool_size=1)
    yield engine
    engine.dispose()


@pytest.fixture(scope="module")
def app(engine: sa.Engine) -> Iterator[TestClient]:
    with api_client(engine.url.render_as_string(hide_password=False), SISU_AUTH="on") as client:
        yield client


def _audits(engine: sa.Engine, **where: object) -> int:
    clauses = " AND ".join(f"{column} = :{column}" for column in where)
    return int(scalar(engine, f"SELECT COUNT(*) FROM app.audit_log WHERE {clauses}", **where))


def test_the_session_cookie_is_signed_httponly_strict_and_holds_no_secret(
    app: TestClient, engine: sa.Engine
) -> None:
    with engine.begin() as conn:
        key = make_key(conn, "viewer", tenants=("t",))
    app.cookies.clear()
    token = csrf_of(app.get("/console/login").text)
    answer = app.post(
        "/console/login", data={"csrf": token, "api_key": key}, follow_redirects=False
    )
    assert answer.status_code == 303 and answer.headers["location"] == "/console/runs"
    cookie = answer.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/console" in cookie
    secret = key.split("_", 2)[2]
    assert secret not in cookie and key not in answer.headers.get("location", "")
    assert _audits(engine, action="POST /console/login", status=303, target=key.split("_")[1]) == 1
    assert app.get("/console/runs").status_code == 200


def test_a_wrong_key_is_refused_and_audited(app: TestClient, engine: sa.Engine) -> None:
    app.cookies.clear()
    token = csrf_of(app.get("/console/login").text)
    before = _audits(engine, action="POST /console/login", status=401)
    answer = app.post("/console/login", data={"csrf": token, "api_key": "sk_nope_nope"})
    assert answer.status_code == 401 and "unknown, malformed, expired or revoked" in answer.text
    assert "sk_nope_nope" not in answer.text  # the key is never echoed
    assert _audits(engine, action="POST /console/login", status=401) == before + 1


def test_a_post_without_its_csrf_token_is_403_and_writes_only_its_audit_row(
    app: TestClient, engine: sa.Engine
) -> None:
    with engine.begin() as conn:
        key = make_key(conn, "admin", tenants=("*",))
    console_login(app, key)
    before = ledger_counts(engine)
    refused = _audits(engine, action="POST /console/keys", status=403)
    for token in ("", "forged"):
        answer = app.post(
            "/console/keys",
            data={"csrf": token, "name": "x", "roles": "viewer", "tenants": "t"},
        )
        assert answer.status_code == 403
    assert ledger_counts(engine) == before
    assert _audits(engine, action="POST /console/keys", status=403) == refused + 2


def test_a_tampered_cookie_is_no_session(app: TestClient, engine: sa.Engine) -> None:
    with engine.begin() as conn:
        key = make_key(conn, "viewer", tenants=("t",))
    console_login(app, key)
    value = app.cookies.get("sisu_console")
    assert value
    app.cookies.set(
        "sisu_console", value[:-2] + ("AA" if value[-2:] != "AA" else "BB"), path="/console"
    )
    answer = app.get("/console/runs", follow_redirects=False)
    assert answer.status_code == 303 and answer.headers["location"].startswith("/console/login")


def test_revoking_a_key_ends_its_console_sessions(app: TestClient, engine: sa.Engine) -> None:
    with engine.begin() as conn:
        key = make_key(conn, "viewer", tenants=("t",))
    console_login(app, key)
    assert app.get("/console/runs").status_code == 200
    with engine.begin() as conn:
        revoke_key(conn, key_id=key.split("_")[1])
    answer = app.get("/console/runs", follow_redirects=False)
    assert answer.status_code == 303 and answer.headers["location"].startswith("/console/login")


def test_logging_out_ends_the_session(app: TestClient, engine: sa.Engine) -> None:
    with engine.begin() as conn:
        key = make_key(conn, "viewer", tenants=("t",))
    token = console_login(app, key)
    assert (
        app.post("/console/logout", data={"csrf": token}, follow_redirects=False).status_code == 303
    )
    answer = app.get("/console/runs", follow_redirects=False)
    assert answer.status_code == 303 and answer.headers["location"].startswith("/console/login")


def test_with_auth_off_there_is_no_login_and_a_banner_says_so(databases: TestDatabases) -> None:
    with api_client(databases.create(), SISU_AUTH="off") as client:
        page = client.get("/console/login")
        assert page.url.path == "/console/runs"
        assert "Auth is off." in page.text and "Log out" not in page.text
        assert 'name="csrf"' in page.text  # forms still carry their token
        assert client.post("/console/runs/bulk", data={"operation": "cancel"}).status_code == 403
