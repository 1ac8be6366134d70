"""Deterministic fault injection for the mock provider, chosen from the intent.

Words in the goal (so the manual's curl examples can trigger them) or explicit
constraints set each task's fault; DecideST writes the choice into the task's
labels, so it is part of the approved task list and replays identically.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from sisu_kodo.contracts.intents import (
    MOCK_KNOB_CAPS,
    MOCK_LATENCY_MS,
    MOCK_OUTPUT_BYTES,
    mock_knob,
)

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
    latency = _knob(constraints, MOCK_LATENCY_MS)
    if latency is not None:
        labels[LATENCY_LABEL] = str(latency)
    elif "slow" in goal.lower():
        labels[LATENCY_LABEL] = str(SLOW_LATENCY_MS)
    output = _knob(constraints, MOCK_OUTPUT_BYTES)
    if output is not None:
        labels[OUTPUT_LABEL] = str(output)
    return labels


def _knob(constraints: dict[str, Any], knob: str) -> int | None:
    """The door refuses out-of-range knobs; intents stored before it did are held to the
    same caps here."""
    return mock_knob(constraints.get(knob), cap=MOCK_KNOB_CAPS[knob])


def _fault_for(goal: str, constraints: dict[str, Any]) -> tuple[Fault | None, bool]:
    explicit = constraints.get("mockFault")
    if isinstance(explicit, str) and explicit in Fault.__members__.values():
        return Fault(explicit), constraints.get("mockFaultTasks") == "all"
    lowered = goal.lower()
    for phrase, fault, every_task in _GOAL_PHRASES:
        if phrase in lowered:
            return fault, every_task
    return None, False
