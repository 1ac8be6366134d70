"""A workspace that cannot reach the sandbox is an UPLOAD_FAIL (retried as the taxonomy
says), on the live local provider and on the E2B fake; a good one is there before the
command runs."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from sisu_kodo.contracts.sandbox import ErrCode
from sisu_kodo.sbx.local import LocalSandboxProvider
from sisu_kodo.sbx.microsandbox import MicrosandboxProvider
from sisu_kodo.workspaces import Caps, build_snapshot, read_archive
from tests.fixtures.archives import tar_of
from tests.sbx.conftest import MakeRequest, e2b_provider
from tests.sbx.e2b_fake import FakeE2B

SNAPSHOT = build_snapshot(read_archive(tar_of({"in.txt": b"hello\n"}), Caps(10, 1 << 20)))


def reader(sha256: str) -> bytes:
    assert sha256 == SNAPSHOT.sha256
    return SNAPSHOT.tar


def missing(sha256: str) -> bytes:
    raise KeyError(f"no blob {sha256}")


def test_local_without_the_snapshot_is_an_upload_failure(
    local: LocalSandboxProvider, make_request: MakeRequest
) -> None:
    result = local.run(make_request("cat in.txt", workspaceSha256=SNAPSHOT.sha256))
    assert result.errCode is ErrCode.UPLOAD_FAIL and result.errCode.retryable
    assert SNAPSHOT.sha256 in (result.errMessage or "")


@pytest.mark.parametrize(
    ("template", "read", "code"),
    [
        ("base", reader, ErrCode.NONE),
        ("base", missing, ErrCode.UPLOAD_FAIL),
        ("t-nospace", reader, ErrCode.UPLOAD_FAIL),
    ],
)
def test_e2b_uploads_the_snapshot_or_fails_the_upload(
    e2b_fake: tuple[FakeE2B, str],
    make_request: MakeRequest,
    template: str,
    read: Callable[[str], bytes],
    code: ErrCode,
) -> None:
    provider = e2b_provider(e2b_fake[1], snapshots=read)
    request = make_request("cat in.txt", workspaceSha256=SNAPSHOT.sha256, image=template)
    result = provider.run(request)
    assert result.errCode is code, result.errMessage
    if code is ErrCode.NONE:
        assert result.stdout == "hello\n"
        assert result.workspaceDiff is not None and result.workspaceDiff.files == []


def test_microsandbox_refuses_a_workspace_instead_of_running_without_it(
    make_request: MakeRequest,
) -> None:
    provider = MicrosandboxProvider()
    result = provider.run(make_request("cat in.txt", workspaceSha256=SNAPSHOT.sha256))
    assert result.errCode is ErrCode.UPLOAD_FAIL
    assert "workspace" in (result.errMessage or "")
