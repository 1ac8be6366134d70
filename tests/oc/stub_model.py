"""A deterministic OpenAI-compatible model on 127.0.0.1 for a real `opencode serve`.

OpenCode always streams (`stream: true`) and asks for structured output through a tool
named StructuredOutput, so the stub answers with a streamed tool call carrying the plan.
It counts requests, and can be told to answer with a malformed plan, or to hang.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

STUB_PLAN: dict[str, Any] = {
    "goal": "Stub plan",
    "design": ["Two independent shell steps, chosen by the stub model."],
    "tasks": [
        {"name": "stub-lint", "command": "echo stub lint", "purpose": "Lint the stub project."},
        {"name": "stub-test", "command": "echo stub test", "purpose": "Test the stub project."},
    ],
    "files": ["README.md"],
    "risks": ["The stub always answers the same."],
    "tests": ["Both commands exit 0."],
}
# Valid JSON, wrong shape: tasks is not a list, goal is not a string, an unknown key.
MALFORMED_PLAN: dict[str, Any] = {"goal": 7, "tasks": "all of them", "mood": "confident"}


@dataclass
class StubModel:
    """Serve in a thread; `requests` counts every chat completion, `structured` those that
    offered the StructuredOutput tool."""

    requests: int = 0
    structured: int = 0
    malformed: bool = False
    hang_next: int = 0
    hang_seconds: float = 60.0
    api_keys: list[str] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _release: threading.Event = field(default_factory=threading.Event)

    @property
    def base_url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def start(self) -> StubModel:
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                if not self.path.endswith("/chat/completions"):
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                stub.handle(self, body)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self._release.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def reset(self) -> None:
        with self._lock:
            self.malformed = False
            self.hang_next = 0

    def handle(self, handler: BaseHTTPRequestHandler, body: dict[str, Any]) -> None:
        tools = [t["function"]["name"] for t in body.get("tools") or []]
        wants_plan = "StructuredOutput" in tools
        with self._lock:
            self.requests += 1
            self.api_keys.append(handler.headers.get("Authorization", ""))
            hang = False
            if wants_plan:
                self.structured += 1
                hang = self.hang_next > 0
                self.hang_next -= 1 if hang else 0
            malformed = self.malformed
        if hang:
            self._release.wait(self.hang_seconds)
            return
        chunks = [_chunk({"role": "assistant", "content": ""})]
        if wants_plan:
            plan = MALFORMED_PLAN if malformed else STUB_PLAN
            call = {
                "index": 0,
                "id": "call_1",
                "type": "function",
                "function": {"name": "StructuredOutput", "arguments": json.dumps(plan)},
            }
            chunks += [_chunk({"tool_calls": [call]}), _chunk({}, "tool_calls")]
        else:
            chunks += [_chunk({"content": "Stub session"}), _chunk({}, "stop")]
        usage = {"prompt_tokens": 10, "completion_tokens": 20, "total_tokens": 30}
        chunks.append(
            {"id": "c1", "object": "chat.completion.chunk", "choices": [], "usage": usage}
        )
        handler.send_response(200)
        handler.send_header("Content-Type", "text/event-stream")
        handler.send_header("Connection", "close")
        handler.end_headers()
        for chunk in chunks:
            handler.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
        handler.wfile.write(b"data: [DONE]\n\n")
        handler.wfile.flush()
        handler.close_connection = True


def _chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {
        "id": "c1",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": "stub-planner",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
