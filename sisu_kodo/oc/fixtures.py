"""Record/replay fixtures: one `<sha256>.json` file per OpenCode exchange.

The file name is the sha256 of the canonical request (agent, schema hash, prompt), so the
same question finds the same answer in any run, on any machine, with no server.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from sisu_kodo.oc.prompts import PlanAsk

FIXTURE_FORMAT = 1


class FixtureStore:
    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def path(self, key: str) -> Path:
        return self.directory / f"{key}.json"

    def read(self, key: str) -> dict[str, Any] | None:
        """The recorded exchange for `key`, or None when nothing was recorded."""
        try:
            data: dict[str, Any] = json.loads(self.path(key).read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        return data

    def write(self, ask: PlanAsk, *, reply: Any, model: str, tokens: dict[str, Any]) -> Path:
        """Store one exchange; written to a temporary file and renamed, so a reader never
        sees half a fixture."""
        self.directory.mkdir(parents=True, exist_ok=True)
        document = {
            "format": FIXTURE_FORMAT,
            "key": ask.fixture_key,
            "request": {
                "agent": ask.agent,
                "schemaHash": ask.schema_hash,
                "promptVersion": ask.version,
                "prompt": ask.prompt,
            },
            "model": model,
            "reply": reply,
            "tokens": tokens,
        }
        target = self.path(ask.fixture_key)
        fd, temporary = tempfile.mkstemp(dir=self.directory, prefix=".tmp-", suffix=".json")
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(document, out, indent=2, sort_keys=True, ensure_ascii=False)
            out.write("\n")
        os.replace(temporary, target)
        return target
