"""OpenCode port: compiles intents into structured plans."""

from sisu_kodo.oc.factory import create_planner
from sisu_kodo.oc.port import CompileRequest, Planner, PlannerError, PlannerFailure, PlanResult

__all__ = [
    "CompileRequest",
    "PlanResult",
    "Planner",
    "PlannerError",
    "PlannerFailure",
    "create_planner",
]
