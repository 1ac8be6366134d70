"""The watchdog's verdict: which rounds of workflows leave a run stuck, and the error text."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from sisu_kodo.contracts.runs import RunStatus
from sisu_kodo.db.stuck_runs import MISSING, UnsettledRun, error_text, judge

RUN = "run_abc"


def _run(status: RunStatus = RunStatus.RUNNING, retry_count: int = 0) -> UnsettledRun:
    return UnsettledRun(RUN, status, retry_count, datetime(2026, 12, 1, tzinfo=UTC))


@pytest.mark.parametrize("live", ["ENQUEUED", "PENDING", "DELAYED"])
def test_a_live_workflow_of_the_round_is_never_stuck(live: str) -> None:
    assert judge(_run(), {RUN: "SUCCESS", f"{RUN}-execute": live}) is None
    assert judge(_run(RunStatus.QUEUED), {RUN: live}) is None


@pytest.mark.parametrize("broken", ["ERROR", "CANCELLED", "MAX_RECOVERY_ATTEMPTS_EXCEEDED"])
def test_a_broken_workflow_is_named_with_its_status_and_error(broken: str) -> None:
    stuck = judge(_run(), {RUN: "SUCCESS", f"{RUN}-execute": broken})
    assert stuck is not None and stuck.broken == f"{RUN}-execute"
    assert stuck.summary == broken
    assert stuck.reason("RecursionError: too deep") == (
        f"stuck running: workflow {RUN}-execute is {broken} in DBOS: RecursionError: too deep"
    )


def test_a_round_without_any_workflow_row_is_stuck_as_missing() -> None:
    stuck = judge(_run(RunStatus.QUEUED), {})
    assert stuck is not None and stuck.broken is None and stuck.summary == "no live workflow"
    assert stuck.workflows == {RUN: MISSING, f"{RUN}-execute": MISSING}
    assert stuck.reason() == (
        f"stuck queued: no live workflow in DBOS ({RUN} missing, {RUN}-execute missing)"
    )


def test_only_the_current_retry_rounds_workflows_count() -> None:
    # Round 0 broke (that is why the run was retried); round 1's plan is queued.
    retried = _run(RunStatus.QUEUED, retry_count=1)
    assert judge(retried, {RUN: "ERROR", f"{RUN}-r1": "ENQUEUED"}) is None
    stuck = judge(retried, {RUN: "ENQUEUED", f"{RUN}-r1": "CANCELLED"})
    assert stuck is not None and stuck.broken == f"{RUN}-r1"


def test_error_text_names_the_exception_class() -> None:
    assert error_text(RecursionError("maximum recursion depth exceeded")) == (
        "RecursionError: maximum recursion depth exceeded"
    )
    assert error_text("as recorded") == "as recorded" and error_text(None) is None
