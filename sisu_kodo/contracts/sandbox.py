"""Sandbox port I/O: the request a task sends and the result every provider returns."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field


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
    }
)


class SandboxRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    runId: str
    taskKey: str
    attempt: int = Field(ge=1)
    command: str
    env: dict[str, str] = Field(default_factory=dict)
    timeoutMs: int = Field(ge=1)
    labels: dict[str, str] = Field(default_factory=dict)


class SandboxMetrics(BaseModel):
    wallMs: int
    bootMs: int | None = None
    cpuMs: int | None = None
    memPeakMB: float | None = None


class SandboxResult(BaseModel):
    taskKey: str
    attempt: int
    provider: str
    exitCode: int | None
    stdout: str = ""
    stderr: str = ""
    errCode: ErrCode
    errMessage: str | None = None
    sandboxRef: str
    metrics: SandboxMetrics
