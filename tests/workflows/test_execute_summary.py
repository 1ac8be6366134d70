"""finish_execute's pure part: ExecuteST's output and the run's error from task views."""

from __future__ import annotations

from typing import Any

from sisu_kodo.canonical import content_hash
from sisu_kodo.contracts.runs import ExecuteOutput, TaskView
from sisu_kodo.workflows.steps.execution import failure_message, summarise_tasks


def view(index: int, status: str, **attempt: Any) -> TaskView:
    return TaskView.model_validate(
        {
            "taskKey": f"{index:02d}" + "ab" * 31,
            "index": index,
            "name": f"task-{index}",
            "command": "make",
            "status": status,
            **attempt,
        }
    )


def test_all_succeeded_is_errcode_none_with_the_longest_wall_time() -> None:
    views = [
        view(1, "succeeded", errCode="NONE", exitCode=0, attempt=1, wallMs=30),
        view(2, "succeeded", errCode="NONE", exitCode=0, attempt=2, wallMs=None),
    ]

    output = summarise_tasks(views)

    assert (output.errCode, output.taskCount, output.succeeded, output.failed) == ("NONE", 2, 2, 0)
    assert output.wallMs == 30
    assert output.tasksSha256 == content_hash([v.taskKey for v in views])
    assert output.failed_tasks() == []


def test_the_first_failure_in_task_order_names_the_errcode() -> None:
    views = [
        view(1, "succeeded", errCode="NONE", exitCode=0, attempt=1, wallMs=5),
        view(2, "failed", errCode="TIMEOUT", attempt=3, wallMs=9),
        view(3, "failed", errCode="CMD_NONZERO", exitCode=1, attempt=1, wallMs=2),
    ]

    output = summarise_tasks(views)

    assert (output.errCode, output.succeeded, output.failed) == ("TIMEOUT", 1, 2)
    assert [task.index for task in output.failed_tasks()] == [2, 3]
    # Without an exit code (a timeout) the message says nothing about one.
    assert failure_message(output.failed_tasks(), output.taskCount) == (
        f"task task-2 ({views[1].taskKey[:12]}) failed with TIMEOUT at attempt 3;"
        " 2 of 3 task(s) failed"
    )


def test_a_failure_with_an_exit_code_reports_it() -> None:
    failed = [view(4, "failed", errCode="CMD_NONZERO", exitCode=2, attempt=5)]

    assert failure_message(failed, 7) == (
        f"task task-4 ({failed[0].taskKey[:12]}) failed with CMD_NONZERO at attempt 5,"
        " exit code 2; 1 of 7 task(s) failed"
    )


def test_the_recorded_output_keeps_the_manuals_shape() -> None:
    output = summarise_tasks([view(1, "succeeded", errCode="NONE", exitCode=0, attempt=1)])

    dumped = output.model_dump()

    assert list(dumped) == [
        "errCode",
        "taskCount",
        "succeeded",
        "failed",
        "wallMs",
        "tasksSha256",
        "raw",
    ]
    assert dumped["raw"] == {
        "tasks": [view(1, "succeeded", errCode="NONE", exitCode=0, attempt=1).model_dump()]
    }
    assert ExecuteOutput.model_validate(dumped) == output
