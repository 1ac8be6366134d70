"""LocalSandboxProvider runs real commands: output, exit codes, env, files, and isolation."""

from __future__ import annotations

import base64
import hashlib
import os
import socket
import subprocess
import time
from pathlib import Path

import pytest

from sisu_kodo.config import ConfigError
from sisu_kodo.contracts.sandbox import ErrCode, FileIn
from sisu_kodo.sbx.local import LocalLimits, LocalSandboxProvider
from tests.fixtures.processes import wait_for
from tests.sbx.conftest import MakeRequest


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _survivors(marker: str) -> list[str]:
    out = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True, check=True)
    return [line for line in out.stdout.splitlines() if marker in line and "ps -eo" not in line]


def test_health_reports_namespaces(local: LocalSandboxProvider) -> None:
    health = local.health()
    assert health.ok and health.isolation == "namespaces"
    assert "bubblewrap" in health.detail


def test_output_exit_code_and_metrics(
    local: LocalSandboxProvider, make_request: MakeRequest
) -> None:
    result = local.run(make_request("echo out; echo err >&2; exit 3"))
    assert (result.exitCode, result.errCode) == (3, ErrCode.CMD_NONZERO)
    assert (result.stdout, result.stderr) == ("out\n", "err\n")
    assert result.isolation == "namespaces"
    assert result.sandboxRef.startswith("local-") and len(result.sandboxRef) == 22
    assert 0 < result.metrics.wallMs < 5000
    ok = local.run(make_request("python3 -c 'print(sum(range(3*10**6)))'"))
    assert (ok.exitCode, ok.errCode, ok.stdout) == (0, ErrCode.NONE, "4499998500000\n")
    assert ok.metrics.cpuMs is not None and ok.metrics.cpuMs > 10


def test_same_attempt_same_ref(local: LocalSandboxProvider, make_request: MakeRequest) -> None:
    first, again = local.run(make_request("true")), local.run(make_request("true"))
    other = local.run(make_request("true", attempt=2))
    assert first.sandboxRef == again.sandboxRef != other.sandboxRef


def test_env_is_only_the_requests(
    local: LocalSandboxProvider, make_request: MakeRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOST_SECRET", "leak")
    result = local.run(make_request("env", env={"GREETING": "hi there"}))
    env = dict(line.split("=", 1) for line in result.stdout.splitlines())
    assert env["GREETING"] == "hi there"
    assert "HOST_SECRET" not in env and env["HOME"] == "/workspace"


def test_files_in_and_out_with_sha256(
    local: LocalSandboxProvider, make_request: MakeRequest
) -> None:
    request = make_request(
        "mkdir -p out && tr a-z A-Z < in/data.txt > out/upper.txt && echo no > skip.log",
        files=[FileIn(path="in/data.txt", contentB64=_b64(b"hello sandbox"))],
        collect=["out/*.txt"],
    )
    result = local.run(request)
    assert result.errCode is ErrCode.NONE, result.stderr
    [upper] = result.filesOut
    assert upper.path == "out/upper.txt" and not upper.truncated
    assert base64.b64decode(upper.contentB64) == b"HELLO SANDBOX"
    assert upper.sha256 == hashlib.sha256(b"HELLO SANDBOX").hexdigest() and upper.size == 13


def test_artifact_files_use_the_resolver(work_root: Path, make_request: MakeRequest) -> None:
    provider = LocalSandboxProvider(work_root=work_root, resolver=lambda uri: uri.encode())
    result = provider.run(
        make_request("cat a.txt", files=[FileIn(path="a.txt", artifactUri="artifact://x")])
    )
    assert result.stdout == "artifact://x"


def test_unsafe_file_path_is_upload_fail(
    local: LocalSandboxProvider, make_request: MakeRequest
) -> None:
    result = local.run(make_request("true", files=[FileIn(path="../x", contentB64="")]))
    assert result.errCode is ErrCode.UPLOAD_FAIL and result.exitCode is None


def test_output_and_files_are_capped(work_root: Path, make_request: MakeRequest) -> None:
    provider = LocalSandboxProvider(work_root=work_root, limits=LocalLimits(output_cap_bytes=1024))
    result = provider.run(
        make_request("head -c 5000 /dev/zero | tr '\\0' x | tee big.bin", collect=["big.bin"])
    )
    assert result.stdout.startswith("x" * 1024) and "[truncated: 3976 more bytes]" in result.stdout
    [big] = result.filesOut
    assert (big.size, big.truncated, len(base64.b64decode(big.contentB64))) == (5000, True, 1024)
    assert big.sha256 == hashlib.sha256(b"x" * 5000).hexdigest()


def test_collect_does_not_follow_symlinks_out(
    local: LocalSandboxProvider, make_request: MakeRequest
) -> None:
    result = local.run(make_request("ln -s /etc/hostname leak.txt", collect=["*.txt"]))
    assert result.errCode is ErrCode.NONE and result.filesOut == []


def test_timeout_kills_setsid_grandchild(
    local: LocalSandboxProvider, make_request: MakeRequest
) -> None:
    marker = f"301.{os.getpid()}"
    started = time.monotonic()
    result = local.run(
        make_request(f"setsid sleep {marker} & (sleep {marker} &) ; sleep {marker}", timeoutMs=800)
    )
    elapsed = time.monotonic() - started
    assert result.errCode is ErrCode.TIMEOUT and result.errCode.retryable
    assert 0.8 <= elapsed < 3.0
    assert _survivors(f"sleep {marker}") == []


def test_network_is_blocked(local: LocalSandboxProvider, make_request: MakeRequest) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        probe = (
            "python3 -c 'import socket,sys; s=socket.socket(); s.settimeout(2);"
            f' sys.exit(s.connect_ex(("127.0.0.1", {port})) and 7)\''
        )
        blocked = local.run(make_request(probe))
        allowed = local.run(make_request(probe, network=True))
    assert blocked.exitCode == 7, blocked.stderr
    assert allowed.exitCode == 0, allowed.stderr
    interfaces = local.run(make_request("cat /proc/net/dev")).stdout
    assert "lo:" in interfaces and "eth" not in interfaces


def test_host_files_are_invisible(
    local: LocalSandboxProvider, make_request: MakeRequest, tmp_path: Path
) -> None:
    secret = tmp_path / "host-secret.txt"
    secret.write_text("do not read")
    result = local.run(make_request(f"ls / ; cat {secret}; ls /root /home /etc/passwd"))
    assert "do not read" not in result.stdout
    assert set(result.stdout.split()) <= {
        "bin",
        "dev",
        "etc",
        "lib",
        "lib64",
        "proc",
        "sbin",
        "tmp",
        "usr",
        "workspace",
    }
    assert "No such file" in result.stderr
    writes = local.run(make_request("touch /usr/x 2>&1; id -u"))
    assert "Read-only file system" in writes.stdout


def test_memory_cap_is_enforced(local: LocalSandboxProvider, make_request: MakeRequest) -> None:
    hog = "python3 -c 'b = bytearray(400 * 1024 * 1024); print(len(b))'"
    result = local.run(make_request(hog, memoryMb=128))
    # A cgroup cap gives OOM; where none is writable RLIMIT_AS gives a MemoryError instead.
    assert result.errCode in (ErrCode.OOM, ErrCode.CMD_NONZERO)
    assert result.stdout == ""
    if result.errCode is ErrCode.OOM:
        assert result.metrics.memPeakMB is not None and result.metrics.memPeakMB <= 129
    else:
        assert "MemoryError" in result.stderr
    fits = local.run(make_request(hog, memoryMb=1024))
    assert fits.stdout == f"{400 * 1024 * 1024}\n", fits.stderr


def test_process_fallback_is_reported_and_still_limits(
    plain: LocalSandboxProvider, make_request: MakeRequest
) -> None:
    health = plain.health()
    assert health.ok and health.isolation == "process"
    result = plain.run(make_request("echo $HOME; exit 4", env={"A": "1"}))
    assert (result.exitCode, result.isolation) == (4, "process")
    assert result.stdout.strip().endswith("/work")
    if os.geteuid() == 0:
        assert plain.run(make_request("id -u")).stdout.strip() == "65534"
    marker = f"302.{os.getpid()}"
    timed = plain.run(make_request(f"setsid sleep {marker} & sleep {marker}", timeoutMs=500))
    assert timed.errCode is ErrCode.TIMEOUT
    # Output goes to files, so an escapee holding stdout cannot hang the provider; the
    # task's cgroup (when writable) kills it too.
    wait_for(
        lambda: not _survivors(f"sleep {marker}") or not Path("/sys/fs/cgroup/memory").is_dir(),
        timeout=10,
        what="the escaped grandchild to be killed with the task's cgroup",
    )


def test_bwrap_refused_is_refused_not_downgraded(work_root: Path) -> None:
    with pytest.raises(ConfigError, match=r"^invalid SBX_LOCAL_ISOLATION='auto': namespace"):
        LocalSandboxProvider(work_root=work_root, bwrap="/bin/false")


def test_fifty_tasks_in_parallel(local: LocalSandboxProvider, make_request: MakeRequest) -> None:
    from concurrent.futures import ThreadPoolExecutor

    requests = [make_request(f"echo {n}", taskKey=f"task-{n}") for n in range(50)]
    with ThreadPoolExecutor(max_workers=16) as pool:
        results = list(pool.map(local.run, requests))
    assert [r.stdout for r in results] == [f"{n}\n" for n in range(50)]
    assert {r.errCode for r in results} == {ErrCode.NONE}
    assert len({r.sandboxRef for r in results}) == 50
