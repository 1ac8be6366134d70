"""Artifact URIs: `artifact://run/<runId>/step/<stepId>/task/<taskKey>/<name>`."""

from __future__ import annotations

ARTIFACT_SCHEME = "artifact://"
DEFAULT_TASK = "default"

MEDIA_TYPES = {
    "plan_card": "application/json",
    "task_list": "application/json",
    "artifact_index": "application/json",
    "budget": "application/json",
    "stdout": "text/plain; charset=utf-8",
    "stderr": "text/plain; charset=utf-8",
    "file": "application/octet-stream",
    "diff_patch": "text/x-diff; charset=utf-8",
    "diff_index": "application/json",
}


def artifact_uri(run_id: str, step_id: str, name: str, task_key: str = DEFAULT_TASK) -> str:
    return f"{ARTIFACT_SCHEME}run/{run_id}/step/{step_id}/task/{task_key}/{name}"


def media_type_for(kind: str) -> str:
    return MEDIA_TYPES.get(kind, "application/octet-stream")
