"""Fixtures for the sandbox providers: real local providers, and the E2B loopback fake
(uvicorn in a thread on 127.0.0.1, started once per module and stopped after it)."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from sisu_kodo.config import IsolationChoice
from sisu_kodo.contracts.sandbox import SandboxRequest
from sisu_kodo.sbx.e2b import E2BConnection, E2BSandboxProvider
from sisu_kodo.sbx.local import Isolation, LocalSandboxProvider
from tests.fixtures.processes import wait_for
from tests.sbx.e2b_fake import GOOD_KEY, FakeE2B, serve_fake

MakeRequest = Callable[..., SandboxRequest]


def commands_running(marker: str) -> list[int]:
    """Pids of live processes whose command line holds `marker`, read from /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            state = (entry / "stat").read_text().rpartition(")")[2].split()[0]
        except (OSError, IndexError):
            continue  # it exited while we looked
        if marker in cmdline and state != "Z":
            found.append(int(entry.name))
    return found


def wait_commands_gone(marker: str, timeout: float = 5) -> None:
    """No process with `marker` is left within `timeout` s. A SIGKILLed process dies
    when it is next scheduled, which on a loaded machine is not at once."""
    wait_for(lambda: commands_running(marker) == [], timeout=timeout, what=f"no {marker!r} left")


@pytest.fixture
def make_request() -> MakeRequest:
    def make(command: str, **fields: Any) -> SandboxRequest:
        values: dict[str, Any] = {"runId": "run-1", "taskKey": "task-1", "attempt": 1}
        values |= {"timeoutMs": 10_000, **fields}
        return SandboxRequest(command=command, **values)

    return make


@pytest.fixture
def work_root() -> Iterator[Path]:
    """A work root the unprivileged sandbox uid can traverse (pytest's tmp_path is 0700)."""
    root = Path(tempfile.mkdtemp(prefix="sisu-sbx-test-"))
    root.chmod(0o711)
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def local(work_root: Path) -> LocalSandboxProvider:
    """The bubblewrap provider; a machine where bwrap cannot run fails here, loudly."""
    provider = LocalSandboxProvider(work_root=work_root)
    assert provider.isolation is Isolation.NAMESPACES, (
        f"bubblewrap cannot run here, so isolation tests cannot prove anything: "
        f"{provider.health().detail}"
    )
    return provider


@pytest.fixture
def plain(work_root: Path) -> LocalSandboxProvider:
    """The explicit plain-subprocess fallback."""
    return LocalSandboxProvider(work_root=work_root, isolation=IsolationChoice.PROCESS)


@pytest.fixture(scope="module")
def e2b_fake() -> Iterator[tuple[FakeE2B, str]]:
    with serve_fake() as served:
        yield served


def e2b_provider(
    url: str, *, api_key: str = GOOD_KEY, sandbox_url: str | None = None, **kw: Any
) -> E2BSandboxProvider:
    connection = E2BConnection(
        api_key=api_key,
        api_url=url,
        sandbox_url=sandbox_url or url,
        http_version="1.1",
        retries=0,
        request_timeout_s=5,
    )
    return E2BSandboxProvider(connection, **kw)


@pytest.fixture
def e2b(e2b_fake: tuple[FakeE2B, str]) -> E2BSandboxProvider:
    return e2b_provider(e2b_fake[1])
