from __future__ import annotations

from sisu_kodo.contracts.plans import Plan, PlanTask
from sisu_kodo.oc.port import CompileRequest
from sisu_kodo.oc.replay import ReplayPlanner
from sisu_kodo.sbx.faults import FAULT_LABEL, LATENCY_LABEL, task_labels
from sisu_kodo.workflows.tasks import derive_tasks, tasks_hash


def _plan(n: int = 3) -> Plan:
    return (
        ReplayPlanner()
        .compile(
            CompileRequest(
                runId="run_a", goal="build logic", inputs={}, constraints={}, taskCount=n
            )
        )
        .plan
    )


def test_replay_planner_is_deterministic() -> None:
    assert _plan(5) == _plan(5)
    assert len(_plan(5).tasks) == 5
    assert _plan(5).tasks[0].command == "echo '[1/5] build logic'"


def test_task_keys_are_stable_and_scoped_to_the_run() -> None:
    first = derive_tasks(run_id="run_a", plan=_plan(), goal="g", constraints={}, timeout_ms=1000)
    again = derive_tasks(run_id="run_a", plan=_plan(), goal="g", constraints={}, timeout_ms=1000)
    other = derive_tasks(run_id="run_b", plan=_plan(), goal="g", constraints={}, timeout_ms=1000)
    assert [t.taskKey for t in first] == [t.taskKey for t in again]
    assert len({t.taskKey for t in first}) == 3
    assert not {t.taskKey for t in first} & {t.taskKey for t in other}
    assert all(len(t.taskKey) == 64 for t in first)
    assert tasks_hash(first) == tasks_hash(again) != tasks_hash(other)


def test_identical_commands_still_get_distinct_keys() -> None:
    plan = Plan(goal="g", tasks=[PlanTask(name="same", command="true")] * 2)
    tasks = derive_tasks(run_id="r", plan=plan, goal="g", constraints={}, timeout_ms=1)
    assert tasks[0].taskKey != tasks[1].taskKey


def test_goal_words_choose_faults() -> None:
    assert task_labels("please fail me", {}, index=3, count=3) == {FAULT_LABEL: "cmd_nonzero"}
    assert task_labels("please fail me", {}, index=1, count=3) == {}
    assert task_labels("boot fail", {}, index=1, count=3)[FAULT_LABEL] == "boot_fail"
    assert task_labels("flaky boot", {}, index=2, count=3)[FAULT_LABEL] == "flaky_boot"
    assert task_labels("time me out", {}, index=2, count=2)[FAULT_LABEL] == "timeout"
    assert task_labels("slow work", {}, index=1, count=1) == {LATENCY_LABEL: "1000"}
    assert task_labels("build logic", {}, index=1, count=1) == {}


def test_constraints_set_the_same_knobs() -> None:
    labels = task_labels(
        "calm goal",
        {"mockFault": "boot_fail", "mockFaultTasks": "all", "mockLatencyMs": 5},
        index=1,
        count=2,
    )
    assert labels == {FAULT_LABEL: "boot_fail", LATENCY_LABEL: "5"}
    assert task_labels("g", {"mockFault": "nonsense"}, index=1, count=1) == {}
