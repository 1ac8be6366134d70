"""Workspaces without a database: safe archive reading, deterministic snapshots, diffs."""

from __future__ import annotations

import io
import subprocess
import tarfile
from pathlib import Path

import pytest

from sisu_kodo.workspaces import (
    Caps,
    build_snapshot,
    diff_files,
    read_archive,
    read_snapshot,
    read_work_tree,
)
from sisu_kodo.workspaces.errors import (
    ArchiveError,
    LinkEscapeError,
    SpecialFileError,
    TooLargeError,
    TooManyEntriesError,
    UnsafePathError,
)
from tests.fixtures.archives import (
    symlink_member,
    tar_of,
    tar_with,
    tiny_files_tar,
    zip_bomb,
    zip_of,
)

CAPS = Caps(max_files=10_000, max_bytes=8 << 20)


def device_member() -> tarfile.TarInfo:
    info = tarfile.TarInfo("dev/sda")
    info.type, info.devmajor, info.devminor = tarfile.BLKTYPE, 8, 0
    return info


def hard_link_member() -> tarfile.TarInfo:
    info = tarfile.TarInfo("passwd")
    info.type, info.linkname = tarfile.LNKTYPE, "/etc/passwd"
    return info


MALICIOUS = {
    "dot-dot": (tar_of({"../escape.txt": b"x"}), UnsafePathError, "../escape.txt"),
    "nested-dot-dot": (tar_of({"a/../../x": b"x"}), UnsafePathError, "a/../../x"),
    "absolute": (tar_of({"/etc/cron.d/evil": b"x"}), UnsafePathError, "/etc/cron.d/evil"),
    "zip-absolute": (zip_of({"/abs.txt": b"x"}), UnsafePathError, "/abs.txt"),
    "zip-dot-dot": (zip_of({"../../z": b"x"}), UnsafePathError, "../../z"),
    "symlink-to-etc": (tar_with(symlink_member("etc", "/etc")), LinkEscapeError, "etc"),
    "relative-link-out": (tar_with(symlink_member("a/up", "../../x")), LinkEscapeError, "a/up"),
    "hard-link-out": (tar_with(hard_link_member()), LinkEscapeError, "passwd"),
    "device": (tar_with(device_member()), SpecialFileError, "dev/sda"),
}


@pytest.mark.parametrize("name", sorted(MALICIOUS))
def test_malicious_entries_are_refused_by_name(name: str) -> None:
    raw, error, entry = MALICIOUS[name]
    with pytest.raises(error) as refused:
        read_archive(raw, CAPS)
    assert refused.value.details["entry"] == entry
    assert entry in refused.value.message
    assert refused.value.http_status == 400


def test_entries_under_a_link_are_refused() -> None:
    """A link inside the tree, then a file written through it: the classic tar escape."""
    assert read_archive(tar_with(symlink_member("docs", "sub")), CAPS)[0].kind == "symlink"
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        tar.addfile(symlink_member("docs", "."))
        info = tarfile.TarInfo("docs/x")
        info.size = 1
        tar.addfile(info, io.BytesIO(b"x"))
    with pytest.raises(UnsafePathError) as refused:
        read_archive(out.getvalue(), CAPS)
    assert refused.value.details["entry"] == "docs/x"


def test_a_hundred_thousand_tiny_files_stop_at_the_cap() -> None:
    with pytest.raises(TooManyEntriesError) as refused:
        read_archive(tiny_files_tar(100_000), CAPS)
    assert refused.value.code == "archive_too_many_entries"
    assert refused.value.details["maxFiles"] == CAPS.max_files


def test_a_zip_bomb_stops_at_the_expanded_size_cap() -> None:
    bomb = zip_bomb(64 << 20)
    assert len(bomb) < 1 << 20
    with pytest.raises(TooLargeError) as refused:
        read_archive(bomb, CAPS)
    assert refused.value.code == "archive_too_large"
    assert refused.value.details["entry"] == "bomb.bin"


def test_garbage_is_unreadable() -> None:
    with pytest.raises(ArchiveError) as refused:
        read_archive(b"not an archive at all", CAPS)
    assert refused.value.code == "archive_unreadable"


def test_git_folders_are_left_out_unless_asked() -> None:
    raw = tar_of({".git/config": b"[core]", "a": b"1"})
    assert [e.path for e in read_archive(raw, CAPS)] == ["a"]
    assert ".git/config" in [e.path for e in read_archive(raw, CAPS, include_git=True)]


def test_snapshots_are_deterministic_whatever_the_archive() -> None:
    files = {"b/x.py": b"print(1)\n", "a.txt": b"a\n", "README.md": b"# Title\nline\n"}
    reordered = dict(reversed(list(files.items())))
    first = build_snapshot(read_archive(tar_of(files, mtime=1), CAPS))
    second = build_snapshot(read_archive(tar_of(reordered, gzip=True, mtime=2), CAPS))
    third = build_snapshot(read_archive(zip_of(files), CAPS))
    assert first.tar == second.tar == third.tar
    assert first.sha256 == second.sha256 == third.sha256
    assert read_snapshot(first.tar).sha256 == first.sha256
    manifest = first.manifest()
    assert [f["path"] for f in manifest["files"]] == ["README.md", "a.txt", "b/x.py"]
    assert manifest["fileCount"] == 3 and manifest["size"] == sum(map(len, files.values()))
    assert first.summary()["readme"] == "# Title\nline"
    with tarfile.open(fileobj=io.BytesIO(first.tar)) as tar:
        members = tar.getmembers()
    assert {(m.mtime, m.uid, m.gid, m.uname) for m in members} == {(0, 0, 0, "")}


def test_a_diff_applies_with_git_apply(tmp_path: Path) -> None:
    before = {"keep.txt": b"same\n", "calc.py": b"def add(a, b):\n    return a - b\n", "old": b"x"}
    after = {
        "keep.txt": b"same\n",
        "calc.py": b"def add(a, b):\n    return a + b\n",
        "new.txt": b"no newline",
        "blob.bin": b"\x00\x01",
    }
    diff = diff_files(before, after)
    assert {(f.path, f.status, f.binary) for f in diff.files} == {
        ("calc.py", "modified", False),
        ("old", "deleted", False),
        ("new.txt", "added", False),
        ("blob.bin", "added", True),
    }
    for name, data in before.items():
        (tmp_path / name).write_bytes(data)
    (tmp_path / "change.patch").write_text(diff.patch)
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    subprocess.run(["git", "apply", "change.patch"], cwd=tmp_path, check=True)
    assert (tmp_path / "calc.py").read_bytes() == after["calc.py"]
    assert (tmp_path / "new.txt").read_bytes() == after["new.txt"]
    assert not (tmp_path / "old").exists()


def test_caches_are_not_changes() -> None:
    after = {"__pycache__/m.pyc": b"\x00", ".pytest_cache/v": b"1", "m.pyc": b"x"}
    assert diff_files({}, after).files == []


def test_the_work_tree_is_read_without_links_and_within_caps(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_bytes(b"a")
    (tmp_path / "outside").symlink_to("/etc/passwd")
    (tmp_path / "__pycache__").mkdir()
    (tmp_path / "__pycache__" / "x.pyc").write_bytes(b"\x00")
    assert read_work_tree(tmp_path) == {"a.txt": b"a"}
    (tmp_path / "big").write_bytes(b"x" * 2048)
    with pytest.raises(TooLargeError):
        read_work_tree(tmp_path, Caps(max_files=10, max_bytes=1024))
