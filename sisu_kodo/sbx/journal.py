"""The mock's execution journal: one JSON line when an execution starts and one when it
finishes, appended to `executions.jsonl` under SBX_MOCK_JOURNAL_DIR.

The mock executes inside the worker, so a crash loses its execution; the journal lets
tests count executions "from inside the sandbox", and lets the mock answer LOST for an
attempt that started and never finished instead of running it a second time.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from sisu_kodo.contracts.sandbox import SandboxRequest, SandboxResult

JOURNAL_FILE = "executions.jsonl"


class ExecutionJournal:
    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / JOURNAL_FILE

    def started(self, request: SandboxRequest, ref: str) -> None:
        self._append({"event": "started", **_identity(request, ref)})

    def finished(self, request: SandboxRequest, ref: str, result: SandboxResult) -> None:
        entry = {"event": "finished", **_identity(request, ref), "result": result.model_dump()}
        self._append(entry)

    def entries(self) -> list[dict[str, Any]]:
        try:
            lines = self.path.read_text().splitlines()
        except FileNotFoundError:
            return []
        return [json.loads(line) for line in lines if line.strip()]

    def state(self, ref: str) -> tuple[bool, SandboxResult | None]:
        """Whether the attempt ever started, and its result when it finished."""
        started, result = False, None
        for entry in self.entries():
            if entry["ref"] != ref:
                continue
            started = True
            if entry["event"] == "finished":
                result = SandboxResult.model_validate(entry["result"])
        return started, result

    def _append(self, entry: dict[str, Any]) -> None:
        # One write on an O_APPEND descriptor: concurrent workers never interleave a line.
        line = (json.dumps(entry) + "\n").encode()
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)


def _identity(request: SandboxRequest, ref: str) -> dict[str, Any]:
    return {
        "ref": ref,
        "runId": request.runId,
        "taskKey": request.taskKey,
        "attempt": request.attempt,
        "pid": os.getpid(),
    }
