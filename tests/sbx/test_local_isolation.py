"""Isolation never drops silently: live mode refuses without namespaces unless process
isolation is asked for by name; tasks see no checkout nor data dir; one task's fork bomb
does not stop another task from starting and finishing."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from sisu_kodo.config import ConfigError, Settings
from sisu_kodo.contracts.sandbox import ErrCode, SandboxResult
from sisu_kodo.sbx import create_provider
from sisu_kodo.sbx.local import LocalSandboxProvider
from tests.fixtures.processes import wait_for
from tests.sbx.conftest import MakeRequest, commands_running, wait_commands_gone

CHECKOUT = Path(__file__).resolve().parents[2]
_BOMB = """
import os, time
for n in range(200):
    try:
        if os.fork() == 0:
            time.sleep(60)
            os._exit(0)
    except OSError as exc:
        print("fork failed after", n, exc, flush=True)
        break
time.sleep(60)
"""


@pytest.fixture(params=["/nonexistent/bwrap", "/bin/false"])
def broken_bwrap(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def test_live_mode_without_bubblewrap_refuses_in_one_line(
    work_root: Path, broken_bwrap: str
) -> None:
    settings = Settings(
        SB_MODE="live",
        SBX_PROVIDER="local",
        SBX_LOCAL_BWRAP=broken_bwrap,
        SBX_LOCAL_WORK_ROOT=work_root,
    )
    with pytest.raises(ConfigError) as raised:
        create_provider(settings)
    message = str(raised.value)
    assert message.startswith("invalid SBX_LOCAL_ISOLATION='auto'") and "\n" not in message
    assert "SBX_LOCAL_ISOLATION=process" in message


def test_explicit_process_isolation_starts_and_says_so(
    work_root: Path, broken_bwrap: str, make_request: MakeRequest
) -> None:
    settings = Settings(
        SB_MODE="live",
        SBX_PROVIDER="local",
        SBX_LOCAL_BWRAP=broken_bwrap,
        SBX_LOCAL_ISOLATION="process",
        SBX_LOCAL_WORK_ROOT=work_root,
    )
    provider = create_provider(settings)
    health = provider.health()
    assert health.ok and health.isolation == "process"
    assert "NO namespaces" in health.detail and "NOT isolated" in health.detail
    result = provider.run(make_request("echo ran"))
    assert (result.errCode, result.stdout, result.isolation) == (ErrCode.NONE, "ran\n", "process")


def test_tasks_cannot_read_the_checkout_or_the_data_dir(
    local: LocalSandboxProvider, make_request: MakeRequest, tmp_path: Path
) -> None:
    data_dir = tmp_path / "sisu-data"
    data_dir.mkdir()
    (data_dir / "secret").write_text("ledger password")
    readme = CHECKOUT / "README.md"
    assert readme.is_file()
    probe = f"cat {readme}; cat {data_dir / 'secret'}; ls {CHECKOUT} /work /root /home"
    result = local.run(make_request(probe, env={"SISU_DATA_DIR": str(data_dir)}))
    assert "Sisu-Kodo" not in result.stdout and "ledger password" not in result.stdout
    assert result.stdout == ""
    assert result.stderr.count("No such file or directory") >= 5, result.stderr


@pytest.mark.skipif(
    not os.access("/sys/fs/cgroup/pids", os.W_OK), reason="no writable pids cgroup here"
)
def test_fork_bomb_does_not_starve_another_task(work_root: Path, make_request: MakeRequest) -> None:
    from sisu_kodo.sbx.local import LocalLimits

    provider = LocalSandboxProvider(work_root=work_root, limits=LocalLimits(processes=64))
    marker = f"bomb-{os.getpid()}"
    # Asks for 200 processes, gets what pids.max allows, holds them until the deadline.
    bomb = make_request(f"python3 -c '{_BOMB}' {marker}", taskKey="bomb", timeoutMs=8000)
    bomb_ref = provider.start(bomb)
    wait_for(lambda: len(commands_running(marker)) >= 50, timeout=20, what="the bomb's forks")
    results: list[SandboxResult] = []
    waiter = threading.Thread(target=lambda: results.append(provider.wait(bomb, bomb_ref)))
    waiter.start()
    try:
        other = provider.run(
            make_request("for n in 1 2 3 4 5 6 7 8; do sh -c 'echo $$' & done; wait", taskKey="ok")
        )
    finally:
        waiter.join()
    assert other.errCode is ErrCode.NONE, other.stderr
    assert len(other.stdout.split()) == 8, "the other tenant forked all it needed"
    [bombed] = results
    assert bombed.errCode is ErrCode.TIMEOUT
    assert "fork failed" in bombed.stdout, "the bomb hit its own pids.max"
    wait_commands_gone(marker)
