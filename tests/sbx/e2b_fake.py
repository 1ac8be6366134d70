"""A loopback fake of E2B's control plane and in-sandbox agent (envd) for the real SDK.

One Starlette app on 127.0.0.1 serves the REST API (create, list, kill) and envd
(`/health`, `/files`, the Connect `process.Process` and `filesystem.Filesystem`
services, using the server stubs the `e2b` wheel ships). Commands really run, as
subprocesses in a per-sandbox folder that stands in for the sandbox's filesystem.

Failure switches, chosen by the test through the template name or the API key:
`bad-key` → 401; templates `t-404`, `t-429`, `t-500`, `t-503` → that status on create;
`t-lost` → envd answers 502 "sandbox not found" (a sandbox that died);
`t-nospace` → uploads get 507; `t-noread` → downloads get 500.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import tempfile
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qsl

import uvicorn
from connectrpc.code import Code
from connectrpc.errors import ConnectError
from e2b.envd.filesystem import filesystem_pb
from e2b.envd.filesystem.filesystem_connect import FilesystemASGIApplication
from e2b.envd.process import process_pb
from e2b.envd.process.process_connect import ProcessASGIApplication
from protobuf import Oneof
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route

from sisu_kodo.deadlines import wait_until

E = process_pb.ProcessEvent
GOOD_KEY = "e2b_test_key"
_CREATE_FAILURES = {"t-404": 404, "t-429": 429, "t-500": 500, "t-503": 503}


@dataclass
class FakeSandbox:
    sandbox_id: str
    template: str
    metadata: dict[str, str]
    envs: dict[str, str]
    root: Path
    started: datetime = field(default_factory=lambda: datetime.now(UTC))
    pids: set[int] = field(default_factory=set)
    # envd keeps a process running when its client disconnects; holding it here keeps
    # asyncio from killing it when the stream's generator is dropped.
    processes: list[Any] = field(default_factory=list)


class FakeE2B:
    """The fake's state; tests read it (`sandboxes`, `killed_pids`) to assert what the SDK did."""

    def __init__(self) -> None:
        self.sandboxes: dict[str, FakeSandbox] = {}
        self.killed_pids: list[int] = []
        self.deleted: list[str] = []
        self.created: dict[str, dict[str, Any]] = {}
        self.connected: list[str] = []
        self._tmp = Path(tempfile.mkdtemp(prefix="e2b-fake-"))

    # --- control plane ---

    async def create(self, request: Request) -> Response:
        if request.headers.get("x-api-key") != GOOD_KEY:
            return JSONResponse({"code": 401, "message": "Invalid API key"}, status_code=401)
        body = await request.json()
        template = body.get("templateID", "base")
        if template in _CREATE_FAILURES:
            status = _CREATE_FAILURES[template]
            return JSONResponse({"code": status, "message": f"fake {status}"}, status_code=status)
        sandbox_id = f"fake{uuid.uuid4().hex[:12]}"
        self.created[sandbox_id] = body
        root = self._tmp / sandbox_id
        (root / "home/user").mkdir(parents=True)
        self.sandboxes[sandbox_id] = FakeSandbox(
            sandbox_id, template, body.get("metadata") or {}, body.get("envVars") or {}, root
        )
        return JSONResponse(
            {
                "templateID": template,
                "sandboxID": sandbox_id,
                "clientID": "fake",
                "envdVersion": "0.6.4",
            },
            status_code=201,
        )

    async def connect(self, request: Request) -> Response:
        """POST /v2/sandboxes/{id}/connect: 200 with the create answer while it runs."""
        sandbox = self.sandboxes.get(request.path_params["sandbox_id"])
        if sandbox is None:
            return JSONResponse({"code": 404, "message": "not found"}, status_code=404)
        self.connected.append(sandbox.sandbox_id)
        return JSONResponse(
            {
                "templateID": sandbox.template,
                "sandboxID": sandbox.sandbox_id,
                "clientID": "fake",
                "envdVersion": "0.6.4",
            },
            status_code=200,
        )

    async def list(self, request: Request) -> Response:
        wanted = dict(parse_qsl(request.query_params.get("metadata", "")))
        rows = [
            self._listed(s)
            for s in self.sandboxes.values()
            if all(s.metadata.get(k) == v for k, v in wanted.items())
        ]
        return JSONResponse(rows)

    def _listed(self, s: FakeSandbox) -> dict[str, Any]:
        return {
            "templateID": s.template,
            "sandboxID": s.sandbox_id,
            "clientID": "fake",
            "startedAt": s.started.isoformat(),
            "endAt": (s.started + timedelta(minutes=5)).isoformat(),
            "cpuCount": 2,
            "memoryMB": 512,
            "diskSizeMB": 1024,
            "state": "running",
            "envdVersion": "0.6.4",
            "metadata": s.metadata,
        }

    async def kill(self, request: Request) -> Response:
        sandbox = self.sandboxes.pop(request.path_params["sandbox_id"], None)
        if sandbox is None:
            return JSONResponse({"code": 404, "message": "not found"}, status_code=404)
        for pid in sandbox.pids:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
        self.deleted.append(sandbox.sandbox_id)
        return Response(status_code=204)

    # --- envd ---

    def sandbox_of(self, headers: Any) -> FakeSandbox:
        sandbox = self.sandboxes.get(headers.get("e2b-sandbox-id", ""))
        if sandbox is None:
            raise ConnectError(Code.NOT_FOUND, "sandbox not found")
        return sandbox

    def host_path(self, sandbox: FakeSandbox, path: str) -> Path:
        return sandbox.root / path.lstrip("/")

    async def files(self, request: Request) -> Response:
        sandbox = self.sandboxes.get(request.headers.get("e2b-sandbox-id", ""))
        if sandbox is None or sandbox.template == "t-lost":
            return Response("The sandbox was not found", status_code=502)
        target = self.host_path(sandbox, request.query_params["path"])
        if request.method == "GET":
            if sandbox.template == "t-noread":
                return JSONResponse({"code": 500, "message": "disk gone"}, status_code=500)
            if not target.is_file():
                return JSONResponse({"code": 404, "message": "no such file"}, status_code=404)
            return Response(target.read_bytes(), media_type="application/octet-stream")
        if sandbox.template == "t-nospace":
            # The disk fills while the file is written, so envd has read the body by then;
            # answering before it would close the connection under the client's upload.
            await request.body()
            return JSONResponse({"code": 507, "message": "no space"}, status_code=507)
        form = await request.form()
        upload = next(iter(form.values()))
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(await upload.read())  # type: ignore[union-attr]
        name = request.query_params["path"]
        return JSONResponse([{"name": Path(name).name, "type": "file", "path": name}])


class _Process:
    """envd's process service: start really runs the command; send_signal kills it."""

    def __init__(self, fake: FakeE2B) -> None:
        self.fake = fake

    async def start(self, req: Any, ctx: Any) -> AsyncIterator[Any]:
        sandbox = self._sandbox(ctx)
        cwd = self.fake.host_path(sandbox, req.process.cwd or "/home/user")
        home = str(self.fake.host_path(sandbox, "/home/user"))
        env = {
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "HOME": home,
            **sandbox.envs,
            **dict(req.process.envs),
        }
        proc = await asyncio.create_subprocess_exec(
            req.process.cmd,
            *req.process.args,
            cwd=cwd,
            env=env,
            start_new_session=True,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        sandbox.pids.add(proc.pid)
        sandbox.processes.append(proc)
        started: Oneof[Literal["start"], Any] = Oneof("start", E.StartEvent(pid=proc.pid))
        yield process_pb.StartResponse(event=E(event=started))
        queue: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue()
        pumps = [
            asyncio.create_task(_pump(s, name, queue))
            for s, name in ((proc.stdout, "stdout"), (proc.stderr, "stderr"))
        ]
        done = asyncio.gather(*pumps)
        while not (done.done() and queue.empty()):
            with contextlib.suppress(TimeoutError):
                name, chunk = await asyncio.wait_for(queue.get(), 0.05)
                # The stream name is known only at run time, so it cannot be the Literal
                # that the generated Oneof type spells out.
                output = Oneof(name, chunk)
                data: Oneof[Literal["data"], Any] = Oneof(
                    "data",
                    E.DataEvent(output=output),  # type: ignore[arg-type]
                )
                yield process_pb.StartResponse(event=E(event=data))
        rc = await proc.wait()
        ended: Oneof[Literal["end"], Any] = Oneof(
            "end", E.EndEvent(exit_code=rc, exited=True, status=f"exit status {rc}")
        )
        yield process_pb.StartResponse(event=E(event=ended))

    async def send_signal(self, req: Any, ctx: Any) -> Any:
        pid = req.process.selector.value
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
        self.fake.killed_pids.append(pid)
        return process_pb.SendSignalResponse()

    def _sandbox(self, ctx: Any) -> FakeSandbox:
        sandbox = self.fake.sandbox_of(ctx.request_headers)
        return sandbox

    async def list(self, req: Any, ctx: Any) -> Any:
        return process_pb.ListResponse()

    async def connect(self, req: Any, ctx: Any) -> AsyncIterator[Any]:
        raise ConnectError(Code.UNIMPLEMENTED, "fake")
        yield  # pragma: no cover

    async def update(self, req: Any, ctx: Any) -> Any:
        raise ConnectError(Code.UNIMPLEMENTED, "fake")

    async def stream_input(self, req: Any, ctx: Any) -> Any:
        raise ConnectError(Code.UNIMPLEMENTED, "fake")

    async def send_input(self, req: Any, ctx: Any) -> Any:
        raise ConnectError(Code.UNIMPLEMENTED, "fake")

    async def close_stdin(self, req: Any, ctx: Any) -> Any:
        return process_pb.CloseStdinResponse()


async def _pump(stream: Any, name: str, queue: asyncio.Queue[tuple[str, bytes]]) -> None:
    while chunk := await stream.read(4096):
        await queue.put((name, chunk))


class _Filesystem:
    """envd's filesystem service: only list_dir is needed for files out."""

    def __init__(self, fake: FakeE2B) -> None:
        self.fake = fake

    async def list_dir(self, req: Any, ctx: Any) -> Any:
        sandbox = self.fake.sandbox_of(ctx.request_headers)
        top = self.fake.host_path(sandbox, req.path)
        entries = []
        for path in sorted(top.rglob("*")):
            kind = (
                filesystem_pb.FileType.FILE if path.is_file() else filesystem_pb.FileType.DIRECTORY
            )
            sandbox_path = "/" + path.relative_to(sandbox.root).as_posix()
            entries.append(
                filesystem_pb.EntryInfo(
                    name=path.name, type=kind, path=sandbox_path, size=path.stat().st_size
                )
            )
        return filesystem_pb.ListDirResponse(entries=entries)

    def __getattr__(self, name: str) -> Any:
        async def unimplemented(req: Any, ctx: Any) -> Any:
            raise ConnectError(Code.UNIMPLEMENTED, f"fake has no {name}")

        return unimplemented


def build_app(fake: FakeE2B) -> Starlette:
    async def lost_guard(scope: Any, receive: Any, send: Any, inner: Any) -> None:
        headers = {k.decode().lower(): v.decode() for k, v in scope.get("headers", [])}
        sandbox = fake.sandboxes.get(headers.get("e2b-sandbox-id", ""))
        if sandbox is not None and sandbox.template == "t-lost":
            await Response("The sandbox was not found", status_code=502)(scope, receive, send)
            return
        await inner(scope, receive, send)

    def guarded(inner: Any) -> Any:
        async def app(scope: Any, receive: Any, send: Any) -> None:
            await lost_guard(scope, receive, send, inner)

        return app

    process = ProcessASGIApplication(_Process(fake))  # type: ignore[arg-type]
    filesystem = FilesystemASGIApplication(_Filesystem(fake))
    return Starlette(
        routes=[
            Route("/v2/sandboxes", fake.create, methods=["POST"]),
            Route("/v2/sandboxes", fake.list, methods=["GET"]),
            Route("/v2/sandboxes/{sandbox_id}/connect", fake.connect, methods=["POST"]),
            Route("/sandboxes/{sandbox_id}", fake.kill, methods=["DELETE"]),
            Route("/health", lambda r: Response(status_code=204), methods=["GET"]),
            Route("/files", fake.files, methods=["GET", "POST"]),
            Mount("/process.Process", app=guarded(process)),
            Mount("/filesystem.Filesystem", app=guarded(filesystem)),
        ]
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def serve_fake() -> Iterator[tuple[FakeE2B, str]]:
    """Start the fake under uvicorn in a thread on 127.0.0.1; stop it and kill leftovers after."""
    fake = FakeE2B()
    port = free_port()
    config = uvicorn.Config(build_app(fake), host="127.0.0.1", port=port, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_until(lambda: server.started, timeout=10, interval=0.01, what="the fake E2B to start")
    try:
        yield fake, f"http://127.0.0.1:{port}"
    finally:
        for sandbox in fake.sandboxes.values():
            for pid in sandbox.pids:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pid, signal.SIGKILL)
        server.should_exit = True
        thread.join(timeout=10)
        shutil.rmtree(fake._tmp, ignore_errors=True)
