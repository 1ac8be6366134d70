"""Sandbox port I/O: the request a task sends and the result every provider returns."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from sisu_kodo.contracts.workspaces import WorkspaceDiff


class ErrCode(StrEnum):
    NONE = "NONE"
    BOOT_FAIL = "BOOT_FAIL"
    TIMEOUT = "TIMEOUT"
    CMD_NONZERO = "CMD_NONZERO"
    OOM = "OOM"
    NET_FAIL = "NET_FAIL"
    UPLOAD_FAIL = "UPLOAD_FAIL"
    DOWNLOAD_FAIL = "DOWNLOAD_FAIL"
    AUTH = "AUTH"
    RATE_LIMIT = "RATE_LIMIT"
    # The run was canceled and the attempt's sandbox killed: final, never retried.
    CANCELED = "CANCELED"
    # The attempt's sandbox or its record vanished (e.g. it died with a worker): retried
    # as a NEW numbered attempt, never re-run under the same attempt number.
    LOST = "LOST"

    @property
    def retryable(self) -> bool:
        """Infrastructure failures are retried; a command's own failure is not."""
        return self in _RETRYABLE


_RETRYABLE = frozenset(
    {
        ErrCode.BOOT_FAIL,
        ErrCode.TIMEOUT,
        ErrCode.NET_FAIL,
        ErrCode.UPLOAD_FAIL,
        ErrCode.DOWNLOAD_FAIL,
        ErrCode.RATE_LIMIT,
        ErrCode.LOST,
    }
)


class FileIn(BaseModel):
    """A working file placed in the sandbox before the command runs (path is relative)."""

    model_config = ConfigDict(extra="forbid")

    path: str
    contentB64: str | None = None
    artifactUri: str | None = None


class FileOut(BaseModel):
    """A file the command left in its work folder, collected after it ran."""

    path: str
    sha256: str
    size: int
    contentB64: str
    truncated: bool = False


class SandboxRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    runId: str
    taskKey: str
    attempt: int = Field(ge=1)
    command: str
    env: dict[str, str] = Field(default_factory=dict)
    timeoutMs: int = Field(ge=1)
    labels: dict[str, str] = Field(default_factory=dict)
    files: list[FileIn] = Field(default_factory=list)
    collect: list[str] = Field(
        default_factory=list, description="Glob patterns of work-folder files to return."
    )
    cpu: float | None = Field(None, gt=0)
    memoryMb: int | None = Field(None, ge=16)
    network: bool = False
    image: str | None = Field(None, description="Template (E2B) or image (Microsandbox).")
    workspaceSha256: str | None = Field(
        None, description="The snapshot extracted in the work folder before the command."
    )


class SandboxMetrics(BaseModel):
    wallMs: int
    bootMs: int | None = None
    cpuMs: int | None = None
    memPeakMB: float | None = None


def truncation_marker(omitted: int) -> str:
    """What ends a captured output the cap cut, saying how much is missing."""
    return f"\n[truncated: {omitted} more bytes]\n"


class SandboxResult(BaseModel):
    taskKey: str
    attempt: int
    provider: str
    exitCode: int | None
    stdout: str = ""
    stderr: str = ""
    stdoutOmittedBytes: int = Field(
        0, ge=0, description="stdout bytes past the output cap; stdout then ends in a marker."
    )
    stderrOmittedBytes: int = Field(0, ge=0, description="The same for stderr.")
    errCode: ErrCode
    errMessage: str | None = None
    sandboxRef: str
    metrics: SandboxMetrics
    filesOut: list[FileOut] = Field(default_factory=list)
    isolation: str | None = Field(
        None, description="How isolated the run was: microvm, namespaces, process, mock."
    )
    workspaceDiff: WorkspaceDiff | None = Field(
        None, description="What the command changed in the workspace (requests with one)."
    )

    def kept_output(self) -> list[tuple[str, bytes, bool]]:
        """(stream, bytes kept, truncated) of stdout and stderr as the artifacts store them:
        the capped text without the marker, since the artifact index says it was cut."""
        kept = []
        for stream, text, omitted in (
            ("stdout", self.stdout, self.stdoutOmittedBytes),
            ("stderr", self.stderr, self.stderrOmittedBytes),
        ):
            if text:
                body = text.removesuffix(truncation_marker(omitted)) if omitted else text
                kept.append((stream, body.encode(), omitted > 0))
        return kept
