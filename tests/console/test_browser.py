"""The console's scenarios in a real Chromium against a real stack (worker and API as
processes, real PostgreSQL, SISU_AUTH=on), each as a person would do it; every page is
also photographed into docs/img/ for the README."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import sqlalchemy as sa
from playwright.sync_api import Browser, Page, expect

from sisu_kodo.client import SisuClient
from sisu_kodo.contracts.runs import RunStatus
from sisu_kodo.db.engine import create_engine
from tests.fixtures.auth import make_key
from tests.fixtures.browser import DESKTOP, PHONE, chromium, log_in, screenshot
from tests.fixtures.postgres import TestDatabases
from tests.fixtures.processes import Stack
from tests.fixtures.runs import scalar, wait_status

pytestmark = pytest.mark.browser

A, B = "tenant-a", "tenant-b"
LIVE = 15_000  # ms: how long a live part of a page may take to show a change


@dataclass
class Console:
    stack: Stack
    engine: sa.Engine
    keys: dict[str, str]
    browser: Browser

    @property
    def base(self) -> str:
        return self.stack.base_url

    def client(self, who: str) -> SisuClient:
        return SisuClient(self.base, api_key=self.keys[who])

    def page(
        self, who: str | None = None, viewport: dict[str, int] = DESKTOP, *, js: bool = True
    ) -> Page:
        context = self.browser.new_context(viewport=viewport, java_script_enabled=js)  # type: ignore[arg-type]
        page = context.new_page()
        if who is not None:
            log_in(page, self.base, self.keys[who])
        return page

    def start(self, who: str, goal: str, tenant: str = A, **knobs: int) -> str:
        with self.client(who) as client:
            started = client.submit(
                goal,
                partition=tenant,
                steps=knobs.pop("steps", 10),
                concurrency=knobs.pop("concurrency", 5),
                constraints=dict(knobs),
            )
            wait_status(client, started.runId, RunStatus.WAITING_INPUT)
        return started.runId


@pytest.fixture(scope="module")
def console(
    databases: TestDatabases, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Console]:
    stack = Stack(
        databases.create(),
        tmp_path_factory.mktemp("console"),
        extra_env={"SISU_AUTH": "on", "SISU_ARTIFACT_MAX_BYTES": "65536"},
    )
    engine = create_engine(stack.database_url, pool_size=1)
    try:
        stack.start_worker()
        stack.start_api()
        with engine.begin() as conn:
            keys = {
                "admin": make_key(conn, "admin", tenants=("*",), name="ops-admin"),
                "submitter": make_key(conn, "submitter", tenants=(A,), name="ci-bot"),
                "approver": make_key(conn, "approver", tenants=(A,), name="ops-lead"),
                "operator": make_key(conn, "operator", tenants=(A,), name="platform-eng"),
                "viewer": make_key(conn, "viewer", tenants=(A,), name="auditor-a"),
                "both": make_key(conn, "submitter", "approver", tenants=(A,), name="dev-lead"),
                "submitter_b": make_key(conn, "submitter", tenants=(B,), name="ci-bot-b"),
            }
        with chromium() as browser:
            yield Console(stack, engine, keys, browser)
    finally:
        stack.stop()
        engine.dispose()


def _run_status(console: Console, run_id: str) -> str:
    return str(scalar(console.engine, "SELECT status FROM app.runs WHERE id = :r", r=run_id))


def test_log_in_approve_from_the_inbox_and_watch_the_fan_out_live(console: Console) -> None:
    run_id = console.start(
        "submitter",
        "build logic",
        steps=10,
        concurrency=2,
        mockLatencyMs=800,
        mockOutputBytes=40_000,
    )
    login = console.page()
    login.goto(f"{console.base}/console/runs")
    expect(login.get_by_label("API key")).to_be_visible()
    screenshot(login, "login")

    page = console.page("approver")
    watcher = console.page("approver")
    watcher.goto(f"{console.base}/console/runs")
    expect(watcher.locator(f"#status-{run_id}")).to_have_text("waiting_input")
    expect(page.locator("#approvals-badge")).to_have_text(re.compile(r"^[1-9][0-9]*$"))

    page.get_by_role("link", name=re.compile("Approvals")).click()
    row = page.get_by_role("row").filter(has_text=run_id)
    expect(row).to_contain_text("ci-bot")
    expect(row).to_contain_text(A)
    screenshot(page, "approvals")
    row.get_by_role("link").first.click()
    expect(page.get_by_role("heading", name="Plan")).to_be_visible()
    expect(page.locator("#run-status")).to_have_text("waiting_input")
    screenshot(page, "run-plan")

    page.get_by_role("button", name="Approve").click()
    page.wait_for_url(f"**/console/runs/{run_id}")
    page.evaluate("window.notReloaded = true")
    expect(page.locator("#progress-text")).to_contain_text("10/10", timeout=60_000)
    expect(page.locator("#run-status")).to_have_text("succeeded", timeout=LIVE)
    expect(page.locator("#timeline")).to_contain_text("run.succeeded", timeout=LIVE)
    assert page.evaluate("window.notReloaded") is True  # it changed live, without a reload
    expect(watcher.locator(f"#status-{run_id}")).to_have_text("succeeded", timeout=LIVE)
    screenshot(page, "run")

    page.get_by_role("link", name="task-001").click()
    expect(page.get_by_role("heading", name="stdout").first).to_be_visible()
    expect(page.get_by_text("Only the first 16 KiB are shown").first).to_be_visible()
    expect(page.get_by_role("link", name="Download stdout").first).to_be_visible()
    screenshot(page, "task")
    phone = console.page("approver", viewport=PHONE)
    phone.goto(f"{console.base}/console/runs/{run_id}")
    screenshot(phone, "run-phone")


def _forge(page: Page, url: str, form: dict[str, str]) -> int:
    """A POST the page offers no button for, with the session's own cookie and CSRF token
    (taken from its logout form): only the server's permission check stands in the way."""
    csrf = page.locator("input[name=csrf]").first.get_attribute("value")
    assert csrf
    answer = page.request.post(
        url, form={"csrf": csrf, **form}, headers={"Origin": url.split("/console")[0]}
    )
    return answer.status


def test_a_viewer_sees_no_approve_button_and_its_forged_post_is_refused(console: Console) -> None:
    run_id = console.start("submitter", "viewer gate check", steps=2)
    page = console.page("viewer")
    page.goto(f"{console.base}/console/runs/{run_id}")
    expect(page.locator("#run-status")).to_have_text("waiting_input")
    expect(page.get_by_role("button", name="Approve")).to_have_count(0)
    expect(page.get_by_role("button", name="Reject")).to_have_count(0)
    expect(page.get_by_role("button", name="Cancel run")).to_have_count(0)
    status = _forge(page, f"{console.base}/console/runs/{run_id}/approve", {"notes": "forged"})
    assert status == 403
    assert _run_status(console, run_id) == "waiting_input"
    refused = scalar(
        console.engine,
        "SELECT COUNT(*) FROM app.audit_log WHERE target = :r AND status = 403"
        " AND action = 'POST /console/runs/{run_id}/approve'",
        r=run_id,
    )
    assert refused == 1
    assert scalar(
        console.engine,
        "SELECT COUNT(*) FROM app.plan_approvals WHERE run_id = :r AND decision IS NOT NULL",
        r=run_id,
    ) in (0, None)


def test_a_key_that_started_a_run_may_not_approve_it(console: Console) -> None:
    run_id = console.start("both", "own plan check", steps=2)
    page = console.page("both")
    page.goto(f"{console.base}/console/runs/{run_id}")
    expect(page.get_by_text("Waiting for an approver other than the key")).to_be_visible()
    expect(page.get_by_role("button", name="Approve")).to_have_count(0)
    status = _forge(page, f"{console.base}/console/runs/{run_id}/approve", {})
    assert status == 403
    assert _run_status(console, run_id) == "waiting_input"


def test_a_tenant_a_key_never_sees_tenant_b_runs(console: Console) -> None:
    hidden = console.start("submitter_b", "tenant b secret work", tenant=B, steps=1)
    page = console.page("viewer")
    page.goto(f"{console.base}/console/runs")
    expect(page.get_by_role("heading", name="Runs")).to_be_visible()
    expect(page.locator(f"#status-{hidden}")).to_have_count(0)
    expect(page.get_by_text("tenant b secret work")).to_have_count(0)
    page.goto(f"{console.base}/console/approvals")
    expect(page.get_by_text("tenant b secret work")).to_have_count(0)
    answer = page.goto(f"{console.base}/console/runs/{hidden}")
    assert answer is not None and answer.status == 404
    answer = page.goto(f"{console.base}/console/runs?q={hidden}")
    expect(page.get_by_text("No runs match.")).to_be_visible()


def test_a_failed_run_is_retried_from_its_page(console: Console) -> None:
    run_id = console.start("submitter", "fail me", steps=2)
    with console.client("approver") as approver:
        approver.approve_plan(run_id, "ops-lead")
        wait_status(approver, run_id, RunStatus.RETRIES_EXCEEDED)
    page = console.page("operator")
    page.goto(f"{console.base}/console/runs/{run_id}")
    expect(page.locator("#run-status")).to_have_text("retries_exceeded")
    page.get_by_role("link", name="task-002").click()
    expect(page.get_by_text("CMD_NONZERO").first).to_be_visible()
    expect(page.get_by_role("heading", name="stderr").first).to_be_visible()
    page.go_back()
    page.get_by_role("button", name="Retry").click()
    expect(page.get_by_role("heading", name=re.compile("Retry run"))).to_be_visible()
    screenshot(page, "confirm-retry")
    page.get_by_role("button", name="Yes, retry the run").click()
    expect(page.locator("#timeline")).to_contain_text("run.retried", timeout=LIVE)
    expect(page.locator("#run-status")).to_have_text("retries_exceeded", timeout=60_000)
    expect(page.locator("#run-retries")).to_have_text("1")
    assert scalar(console.engine, "SELECT retry_count FROM app.runs WHERE id = :r", r=run_id) == 1


def test_a_slow_run_is_canceled_from_its_page(console: Console) -> None:
    # Each task runs for two minutes, one at a time: the run is still going whatever the
    # machine's load, and the cancel has to stop the command in flight to end it.
    run_id = console.start("submitter", "slow build", steps=3, concurrency=1, mockLatencyMs=120_000)
    with console.client("approver") as approver:
        approver.approve_plan(run_id, "ops-lead")
    page = console.page("operator")
    page.goto(f"{console.base}/console/runs/{run_id}")
    expect(page.locator("#run-status")).to_have_text(re.compile("queued|running"))
    page.get_by_role("button", name="Cancel run").click()
    page.get_by_role("button", name="Yes, cancel the run").click()
    expect(page.locator("#run-status")).to_have_text("canceled")
    expect(page.locator("#timeline")).to_contain_text("run.canceled")
    assert _run_status(console, run_id) == "canceled"


def test_bulk_cancel_shows_the_dry_run_count_before_it_acts(console: Console) -> None:
    ids = [console.start("submitter", f"bulkdemo batch {n}", steps=1) for n in range(3)]
    page = console.page("operator")
    page.goto(f"{console.base}/console/runs?q=bulkdemo")
    page.get_by_label("all 3 matching").check()
    page.get_by_role("button", name="Cancel…").click()
    expect(page.get_by_role("heading", name="Cancel 3 run(s)?")).to_be_visible()
    expect(page.locator("#bulk-count")).to_contain_text("3 run(s) match the filter")
    screenshot(page, "bulk-confirm")
    assert [_run_status(console, run_id) for run_id in ids] == ["waiting_input"] * 3
    page.get_by_role("button", name="Yes, cancel 3 run(s)").click()
    expect(page.locator("#bulk-outcome")).to_contain_text("3 run(s) canceled")
    assert [_run_status(console, run_id) for run_id in ids] == ["canceled"] * 3


def test_ticked_rows_are_the_bulk_selection(console: Console) -> None:
    ids = [console.start("submitter", f"tickdemo batch {n}", steps=1) for n in range(2)]
    page = console.page("operator")
    page.goto(f"{console.base}/console/runs?q=tickdemo")
    page.get_by_label(f"Pick run {ids[0]}").check()
    page.get_by_role("button", name="Cancel…").click()
    expect(page.get_by_role("heading", name="Cancel 1 run(s)?")).to_be_visible()
    page.get_by_role("button", name="Yes, cancel 1 run(s)").click()
    expect(page.locator("#bulk-outcome")).to_contain_text("1 run(s) canceled")
    assert [_run_status(console, run_id) for run_id in ids] == ["canceled", "waiting_input"]


def test_the_admin_pages(console: Console) -> None:
    page = console.page("admin")
    expect(page.get_by_role("heading", name="Runs")).to_be_visible()
    expect(page.get_by_role("button", name="Cancel…")).to_be_visible()
    screenshot(page, "runs")
    page.get_by_role("link", name="Queues").click()
    expect(page.get_by_role("heading", name="Queues and workers")).to_be_visible()
    expect(page.get_by_role("cell", name="test-worker-1")).to_be_visible()
    screenshot(page, "queues")
    page.get_by_role("link", name="Audit").click()
    expect(page.get_by_role("cell", name="POST /console/login").first).to_be_visible()
    screenshot(page, "audit")
    page.get_by_role("link", name="Keys").click()
    page.get_by_text("Create a key").click()
    page.get_by_label("Name").fill("made-in-console")
    page.get_by_label("viewer").check()
    page.get_by_label("Tenants (comma-separated, or *)").fill(A)
    page.get_by_role("button", name="Create key").click()
    new_key = page.locator("#new-key").inner_text()
    assert new_key.startswith("sk_")
    screenshot(page, "keys")
    fresh = console.page()
    log_in(fresh, console.base, new_key)
    expect(fresh.get_by_role("link", name="Keys")).to_have_count(0)
    page.goto(f"{console.base}/console/keys")
    assert new_key not in page.content()  # shown once
    page.get_by_role("button", name="Revoke key made-in-console").click()
    fresh.goto(f"{console.base}/console/runs")
    expect(fresh.get_by_label("API key")).to_be_visible()  # revoked: back to the login


def test_pages_work_with_javascript_off(console: Console) -> None:
    run_id = console.start("submitter", "no script please", steps=2)
    page = console.page("approver", js=False)
    page.get_by_role("link", name=re.compile("Approvals")).click()
    page.get_by_role("row").filter(has_text=run_id).get_by_role("link").first.click()
    expect(page.get_by_role("heading", name="Plan")).to_be_visible()
    expect(page.get_by_role("heading", name="Timeline")).to_be_visible()
    page.get_by_role("button", name="Approve").click()
    expect(page.locator("#run-status")).not_to_have_text("waiting_input")
    expect(page.get_by_role("button", name="Approve")).to_have_count(0)
    with console.client("approver") as client:
        wait_status(client, run_id, RunStatus.SUCCEEDED)
    page.reload()  # no live updates without JavaScript: a reload shows the end
    expect(page.locator("#progress-text")).to_contain_text("2/2")
