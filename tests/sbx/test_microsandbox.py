"""MicrosandboxProvider on this machine (no VT-x/AMD-V): health says why, runs fail fast
with BOOT_FAIL; and its exception mapping."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from microsandbox import errors

from sisu_kodo.contracts.sandbox import ErrCode
from sisu_kodo.sbx.microsandbox import (
    MicrosandboxProvider,
    classify_microsandbox,
    virtualization_problem,
)
from tests.sbx.conftest import MakeRequest

HAS_VIRT = virtualization_problem() is None


def test_virtualization_probe_reads_cpu_flags(tmp_path: Path) -> None:
    kvm = tmp_path / "kvm"
    kvm.touch()
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("flags\t: fpu sse2 hypervisor\n")
    assert "no vmx (Intel) or svm (AMD)" in (virtualization_problem(cpuinfo, kvm) or "")
    cpuinfo.write_text("flags\t: fpu vmx sse2\n")
    assert virtualization_problem(cpuinfo, kvm) is None
    assert "missing" in (virtualization_problem(cpuinfo, tmp_path / "none") or "")


@pytest.mark.skipif(HAS_VIRT, reason="this host has hardware virtualization")
def test_health_reports_the_reason_here() -> None:
    health = MicrosandboxProvider().health()
    assert not health.ok and health.isolation == "microvm"
    assert "vmx" in health.detail or "kvm" in health.detail.lower()


@pytest.mark.skipif(HAS_VIRT, reason="this host has hardware virtualization")
def test_run_is_boot_fail_fast_here(make_request: MakeRequest) -> None:
    started = time.monotonic()
    result = MicrosandboxProvider().run(make_request("echo hi"))
    assert time.monotonic() - started < 1.0
    assert result.errCode is ErrCode.BOOT_FAIL and result.errCode.retryable
    assert result.exitCode is None and "virtualization" in (result.errMessage or "")


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (errors.ExecTimeoutError("exec timed out"), ErrCode.TIMEOUT),
        (TimeoutError(), ErrCode.TIMEOUT),
        (errors.ImagePullFailedError("pull"), ErrCode.NET_FAIL),
        (errors.SandboxNotRunningError("gone"), ErrCode.NET_FAIL),
        (errors.FilesystemError("fs"), ErrCode.UPLOAD_FAIL),
        (
            errors.MicrosandboxError(
                'failed to start "t": sandbox process exited (exit status: 1)'
                " before agent relay became available"
            ),
            ErrCode.BOOT_FAIL,
        ),
        (
            errors.MicrosandboxError("image error: registry error: error sending request"),
            ErrCode.NET_FAIL,
        ),
    ],
)
def test_exception_mapping(exc: BaseException, expected: ErrCode) -> None:
    assert classify_microsandbox(exc) is expected
