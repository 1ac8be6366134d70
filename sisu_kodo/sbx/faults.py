"""Deterministic fault injection for the mock provider, chosen from the intent.

Words in the goal (so the manual's curl examples can trigger them) or explicit
constraints set each task's fault; DecideST writes the choice into the task's
labels, so it is part of the approved task list and replays identically.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

FAULT_LABEL = "mock.fault"
LATENCY_LABEL = "mock.latencyMs"
OUTPUT_LABEL = "mock.outputBytes"
SLOW_LATENCY_MS = 1000


class Fault(StrEnum):
    CMD_NONZERO = "cmd_nonzero"
    FAIL_ONCE = "fail_once"
    BOOT_FAIL = "boot_fail"
    FLAKY_BOOT = "flaky_boot"
    TIMEOUT = "timeout"


# (phrase in the goal, fault, applies to every task or only the last one)
_GOAL_PHRASES: tuple[tuple[str, Fault, bool], ...] = (
    ("fail me", Fault.CMD_NONZERO, False),
    ("fail once", Fault.FAIL_ONCE, False),
    ("flaky boot", Fault.FLAKY_BOOT, True),
    ("boot fail", Fault.BOOT_FAIL, True),
    ("time me out", Fault.TIMEOUT, False),
)


def task_labels(
    goal: str, constraints: dict[str, Any], *, index: int, count: int
) -> dict[str, str]:
    """Labels for task `index` (1-based) of `count`: its injected fault and latency."""
    labels: dict[str, str] = {}
    fault, every_task = _fault_for(goal, constraints)
    if fault is not None and (every_task or index == count):
        labels[FAULT_LABEL] = fault.value
    latency = _count(constraints.get("mockLatencyMs"))
    if latency is not None:
        labels[LATENCY_LABEL] = str(latency)
    elif "slow" in goal.lower():
        labels[LATENCY_LABEL] = str(SLOW_LATENCY_MS)
    output = _count(constraints.get("mockOutputBytes"))
    if output is not None:
        labels[OUTPUT_LABEL] = str(output)
    return labels


def _count(value: Any) -> int | None:
    """A non-negative int from constraints, or None (JSON booleans are not counts)."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    return None


def _fault_for(goal: str, constraints: dict[str, Any]) -> tuple[Fault | None, bool]:
    explicit = constraints.get("mockFault")
    if isinstance(explicit, str) and explicit in Fault.__members__.values():
        return Fault(explicit), constraints.get("mockFaultTasks") == "all"
    lowered = goal.lower()
    for phrase, fault, every_task in _GOAL_PHRASES:
        if phrase in lowered:
            return fault, every_task
    return None, False
