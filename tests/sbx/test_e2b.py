"""E2BSandboxProvider through the real `e2b` SDK against the loopback fake: the happy path,
the explicit kill at our deadline, leftovers and orphans, and one test per errCode."""

from __future__ import annotations

import base64
import hashlib
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from sisu_kodo.contracts.sandbox import ErrCode, FileIn
from sisu_kodo.sbx.e2b import DEADLINE_KEY, OWNER_KEY, OWNER_VALUE, E2BSandboxProvider
from tests.sbx.conftest import MakeRequest, e2b_provider, wait_commands_gone
from tests.sbx.e2b_fake import GOOD_KEY, FakeE2B, free_port

Fake = tuple[FakeE2B, str]


def test_command_env_files_and_metadata(
    e2b: E2BSandboxProvider, e2b_fake: Fake, make_request: MakeRequest
) -> None:
    fake, _ = e2b_fake
    result = e2b.run(
        make_request(
            "tr a-z A-Z < in.txt > out.txt; echo $WHO; echo warn >&2",
            env={"WHO": "e2b"},
            files=[FileIn(path="in.txt", contentB64=base64.b64encode(b"abc").decode())],
            collect=["*.txt"],
            timeoutMs=20_000,
        )
    )
    assert result.errCode is ErrCode.NONE, result.errMessage
    assert (result.exitCode, result.stdout, result.isolation) == (0, "e2b\n", "microvm")
    assert "warn" in result.stderr
    assert result.sandboxRef in fake.deleted, "the sandbox is killed after the attempt"
    body = fake.created[result.sandboxRef]
    deadline = float(body["metadata"].pop(DEADLINE_KEY))
    assert 0 < deadline - time.time() <= 20, "the deadline travels with the sandbox"
    assert body["metadata"] == {
        OWNER_KEY: OWNER_VALUE,
        "runId": "run-1",
        "taskKey": "task-1",
        "attempt": "1",
    }
    assert (body["templateID"], body["envVars"], body["timeout"]) == ("base", {"WHO": "e2b"}, 80)
    assert body["allow_internet_access"] is False
    out = {f.path: f for f in result.filesOut}["out.txt"]
    assert out.sha256 == hashlib.sha256(b"ABC").hexdigest()
    assert result.metrics.bootMs is not None and result.metrics.wallMs >= result.metrics.bootMs


def test_nonzero_exit_is_cmd_nonzero(e2b: E2BSandboxProvider, make_request: MakeRequest) -> None:
    result = e2b.run(make_request("echo partial; exit 3"))
    assert (result.errCode, result.exitCode, result.stdout) == (ErrCode.CMD_NONZERO, 3, "partial\n")


def test_timeout_kills_the_command(
    e2b: E2BSandboxProvider, e2b_fake: Fake, make_request: MakeRequest
) -> None:
    fake, _ = e2b_fake
    marker = f"30.{os.getpid()}"
    result = e2b.run(make_request(f"sleep {marker}", timeoutMs=800))
    assert result.errCode is ErrCode.TIMEOUT
    assert 800 <= result.metrics.wallMs < 5000
    assert result.sandboxRef in fake.deleted, "the sandbox was killed at our deadline"
    wait_commands_gone(f"sleep {marker}")


def test_leftovers_of_a_crashed_attempt_are_killed(
    e2b: E2BSandboxProvider, e2b_fake: Fake, make_request: MakeRequest
) -> None:
    from e2b import Sandbox

    fake, url = e2b_fake
    params: dict[str, Any] = {
        "api_key": "e2b_test_key",
        "api_url": url,
        "sandbox_url": url,
        "http_version": "1.1",
    }
    meta = {OWNER_KEY: OWNER_VALUE, "runId": "run-1", "taskKey": "task-crash", "attempt": "1"}
    left = Sandbox.create(metadata=meta, **params).sandbox_id  # what a crashed worker left
    result = e2b.run(make_request("true", taskKey="task-crash", attempt=2))
    assert result.errCode is ErrCode.NONE
    assert left in fake.deleted and left not in fake.sandboxes


def test_sweep_kills_only_sandboxes_of_finished_runs(
    e2b: E2BSandboxProvider, e2b_fake: Fake
) -> None:
    from e2b import Sandbox

    fake, url = e2b_fake
    params: dict[str, Any] = {
        "api_key": "e2b_test_key",
        "api_url": url,
        "sandbox_url": url,
        "http_version": "1.1",
    }
    live = Sandbox.create(metadata={OWNER_KEY: OWNER_VALUE, "runId": "live"}, **params)
    done = Sandbox.create(metadata={OWNER_KEY: OWNER_VALUE, "runId": "done"}, **params)
    foreign = Sandbox.create(metadata={"runId": "done"}, **params)
    killed = e2b.sweep_orphans(lambda run_id: run_id == "live")
    assert killed == [done.sandbox_id]
    assert {live.sandbox_id, foreign.sandbox_id} <= set(fake.sandboxes)


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("t-404", ErrCode.BOOT_FAIL),
        ("t-500", ErrCode.BOOT_FAIL),
        ("t-429", ErrCode.RATE_LIMIT),
        ("t-503", ErrCode.RATE_LIMIT),
        ("t-lost", ErrCode.NET_FAIL),
        ("t-nospace", ErrCode.UPLOAD_FAIL),
        ("t-noread", ErrCode.DOWNLOAD_FAIL),
    ],
)
def test_error_mapping_through_the_sdk(
    e2b: E2BSandboxProvider, make_request: MakeRequest, template: str, expected: ErrCode
) -> None:
    request = make_request(
        "echo x > o.txt",
        image=template,
        files=[FileIn(path="i", contentB64="")],
        collect=["o.txt"],
    )
    result = e2b.run(request)
    assert result.errCode is expected, result.errMessage
    assert result.errMessage


def test_bad_key_is_auth(e2b_fake: Fake, make_request: MakeRequest) -> None:
    result = e2b_provider(e2b_fake[1], api_key="wrong").run(make_request("true"))
    assert result.errCode is ErrCode.AUTH and not result.errCode.retryable


def test_missing_key_is_auth_without_a_request(make_request: MakeRequest) -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens: a request would be NET_FAIL
    provider = e2b_provider(url, api_key="")
    provider._conn = type(provider._conn)(api_key=None, api_url=url, sandbox_url=url, retries=0)
    assert provider.run(make_request("true")).errCode is ErrCode.AUTH


def test_api_unreachable_is_net_fail(make_request: MakeRequest) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    result = e2b_provider(url).run(make_request("true"))
    assert result.errCode is ErrCode.NET_FAIL and result.errCode.retryable
    assert not e2b_provider(url).health().ok


def test_envd_unreachable_is_net_fail(e2b_fake: Fake, make_request: MakeRequest) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    result = e2b_provider(e2b_fake[1], sandbox_url=dead).run(make_request("true"))
    assert result.errCode is ErrCode.NET_FAIL, result.errMessage
    assert "Unreachable" in (result.errMessage or "") or "Connect" in (result.errMessage or "")


_E2B_WORKER = """
import sys
from sisu_kodo.contracts.sandbox import SandboxRequest
from tests.sbx.conftest import e2b_provider
print(e2b_provider(sys.argv[1]).start(SandboxRequest.model_validate_json(sys.argv[2])), flush=True)
sys.stdin.read()
"""


def test_sandbox_outlives_a_killed_worker_and_runs_once(
    e2b_fake: Fake, make_request: MakeRequest, tmp_path: Path
) -> None:
    """The fake runs commands on the host, so the command counts itself in a host file."""
    fake, url = e2b_fake
    counter = tmp_path / "executions"
    request = make_request(
        f"echo run >> {counter}; sleep 1.5; echo done > out.txt; echo done",
        taskKey="task-reattach",
        collect=["*.txt"],
    )
    worker = subprocess.Popen(
        [sys.executable, "-c", _E2B_WORKER, url, request.model_dump_json()],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert worker.stdout is not None
    ref = worker.stdout.readline().strip()
    worker.kill()
    worker.wait()
    assert ref in fake.sandboxes, "the sandbox lives on without its worker"
    recovering = e2b_provider(url)
    created = len(fake.created)
    assert recovering.start(request) == ref, "found by its metadata, not created again"
    result = recovering.wait(request, ref)
    assert len(fake.created) == created and ref in fake.connected
    assert result.errCode is ErrCode.NONE, result.errMessage
    assert result.stdout == "done\n" and [f.path for f in result.filesOut] == ["out.txt"]
    assert counter.read_text() == "run\n", "executed exactly once"
    assert ref in fake.deleted


def test_cancel_kills_the_runs_sandboxes(
    e2b: E2BSandboxProvider, e2b_fake: Fake, make_request: MakeRequest
) -> None:
    fake, _ = e2b_fake
    marker = f"60.{os.getpid()}"
    requests = [
        make_request(f"sleep {marker}", runId="run-cancel", taskKey=f"t{n}") for n in range(3)
    ]
    refs = [e2b.start(r) for r in requests]
    assert sorted(e2b.cancel_run("run-cancel")) == sorted(refs)
    results = [e2b.wait(r, ref) for r, ref in zip(requests, refs, strict=True)]
    assert {r.errCode for r in results} == {ErrCode.CANCELED}, [r.errMessage for r in results]
    wait_commands_gone(f"sleep {marker}")
    assert set(refs) <= set(fake.deleted)


def test_wait_for_a_vanished_sandbox_is_lost(
    e2b: E2BSandboxProvider, e2b_fake: Fake, make_request: MakeRequest
) -> None:
    request = make_request("sleep 5", taskKey="task-vanish")
    ref = e2b.start(request)
    from e2b import Sandbox

    url = e2b_fake[1]
    assert Sandbox.kill(ref, api_key=GOOD_KEY, api_url=url, sandbox_url=url, http_version="1.1")
    result = e2b.wait(request, ref)
    assert result.errCode is ErrCode.LOST and result.errCode.retryable, result.errMessage
