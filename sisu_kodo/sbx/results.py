"""The one builder of every provider's `SandboxResult`: output capped once, cut marked."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from sisu_kodo.contracts.sandbox import (
    ErrCode,
    FileOut,
    SandboxMetrics,
    SandboxRequest,
    SandboxResult,
    truncation_marker,
)
from sisu_kodo.contracts.workspaces import WorkspaceDiff

DEFAULT_OUTPUT_CAP_BYTES = 1 << 20


@dataclass(frozen=True)
class Captured:
    """What a command wrote to one stream: its start (the cap's worth at least, when it
    wrote that much) and how many bytes it wrote in all."""

    head: bytes = b""
    size: int = 0

    @classmethod
    def of(cls, data: str | bytes) -> Captured:
        raw = data.encode() if isinstance(data, str) else data
        return cls(raw, len(raw))

    @classmethod
    def read(cls, path: Path, cap: int) -> Captured:
        """The start of an output file, without reading more of it than the cap."""
        with path.open("rb") as handle:
            head = handle.read(cap)
        return cls(head, path.stat().st_size)

    def text(self, cap: int) -> tuple[str, int]:
        """The kept text (with a visible marker when cut) and how many bytes were cut."""
        omitted = max(0, self.size - cap)
        text = self.head[:cap].decode(errors="replace")
        return (text + truncation_marker(omitted) if omitted else text), omitted


def sandbox_result(
    request: SandboxRequest,
    *,
    provider: str,
    started: float,
    err: ErrCode,
    sandbox_ref: str,
    output_cap: int,
    exit_code: int | None = None,
    message: str | None = None,
    stdout: Captured = Captured(),
    stderr: Captured = Captured(),
    files_out: list[FileOut] | None = None,
    isolation: str | None = None,
    boot_ms: int | None = None,
    cpu_ms: int | None = None,
    mem_peak_mb: float | None = None,
    wall_ms: int | None = None,
    workspace_diff: WorkspaceDiff | None = None,
) -> SandboxResult:
    """One attempt's result; `started` is its `time.monotonic()` start, for wallMs
    (unless the sandbox measured its own `wall_ms`)."""
    out_text, out_omitted = stdout.text(output_cap)
    err_text, err_omitted = stderr.text(output_cap)
    return SandboxResult(
        taskKey=request.taskKey,
        attempt=request.attempt,
        provider=provider,
        exitCode=exit_code,
        stdout=out_text,
        stderr=err_text,
        stdoutOmittedBytes=out_omitted,
        stderrOmittedBytes=err_omitted,
        errCode=err,
        errMessage=message,
        sandboxRef=sandbox_ref,
        metrics=SandboxMetrics(
            wallMs=wall_ms if wall_ms is not None else int((time.monotonic() - started) * 1000),
            bootMs=boot_ms,
            cpuMs=cpu_ms,
            memPeakMB=mem_peak_mb,
        ),
        filesOut=files_out or [],
        isolation=isolation,
        workspaceDiff=workspace_diff,
    )
