"""sandbox_result: output capped once, the marker in the result, the artifacts without it."""

from __future__ import annotations

import time

from sisu_kodo.contracts.sandbox import ErrCode, SandboxRequest
from sisu_kodo.sbx.results import Captured, sandbox_result

REQUEST = SandboxRequest(runId="r", taskKey="k", attempt=1, command="true", timeoutMs=1000)


def test_long_output_is_cut_at_the_cap_marked_and_stored_without_the_marker() -> None:
    result = sandbox_result(
        REQUEST,
        provider="mock",
        started=time.monotonic(),
        err=ErrCode.NONE,
        exit_code=0,
        stdout=Captured.of("x" * 5000),
        stderr=Captured.of("warn\n"),
        sandbox_ref="ref",
        output_cap=1024,
    )
    assert result.stdout == "x" * 1024 + "\n[truncated: 3976 more bytes]\n"
    assert (result.stdoutOmittedBytes, result.stderrOmittedBytes) == (3976, 0)
    assert result.kept_output() == [("stdout", b"x" * 1024, True), ("stderr", b"warn\n", False)]


def test_a_head_read_from_a_file_keeps_the_whole_size() -> None:
    captured = Captured(head=b"abc", size=10)
    assert captured.text(3) == ("abc\n[truncated: 7 more bytes]\n", 7)
    assert Captured.of(b"abc").text(3) == ("abc", 0)
