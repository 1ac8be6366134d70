"""Deterministic snapshots: a workspace's tree as one tar whose bytes depend on the tree alone.

Entries are sorted by path, every mtime is 0, owners are root (uid/gid 0, no names),
modes are 0755 for folders and executables and 0644 for other files, and symbolic links
(already checked to stay inside the tree) keep their target. The same tree gives the same
bytes on any machine, so the snapshot's sha256 names it: blobs are keyed by it and the
approval binds to it. The manifest lists every file with its size and sha256.
"""

from __future__ import annotations

import hashlib
import io
import tarfile
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from sisu_kodo.canonical import sha256_hex

EntryKind = Literal["file", "dir", "symlink"]
MANIFEST_FORMAT = 1
README_LINES = 20
SUMMARY_FILES = 200


@dataclass(frozen=True)
class Entry:
    """One node of a workspace tree; `path` is relative, normalised, without `./`."""

    path: str
    kind: EntryKind
    data: bytes = b""
    executable: bool = False
    target: str = ""  # a symlink's target

    @property
    def mode(self) -> int:
        return 0o755 if self.kind == "dir" or self.executable else 0o644


@dataclass(frozen=True)
class Caps:
    """How big a workspace may be: files (every entry counts) and expanded bytes."""

    max_files: int
    max_bytes: int


@dataclass(frozen=True)
class Snapshot:
    tar: bytes
    sha256: str
    entries: tuple[Entry, ...]

    @property
    def files(self) -> dict[str, bytes]:
        return {entry.path: entry.data for entry in self.entries if entry.kind == "file"}

    @property
    def file_count(self) -> int:
        return sum(1 for entry in self.entries if entry.kind == "file")

    @property
    def size(self) -> int:
        return sum(len(entry.data) for entry in self.entries)

    def manifest(self) -> dict[str, Any]:
        files = [
            {"path": e.path, "size": len(e.data), "sha256": sha256_hex(e.data)}
            for e in self.entries
            if e.kind == "file"
        ]
        links = [{"path": e.path, "target": e.target} for e in self.entries if e.kind == "symlink"]
        return {
            "format": MANIFEST_FORMAT,
            "snapshotSha256": self.sha256,
            "fileCount": len(files),
            "size": self.size,
            "files": files,
            "links": links,
        }

    def summary(self) -> dict[str, Any]:
        """What the planner is shown: the first files with their sizes, the README's start."""
        files = [e for e in self.entries if e.kind == "file"]
        return {
            "fileCount": len(files),
            "size": self.size,
            "files": [{"path": e.path, "size": len(e.data)} for e in files[:SUMMARY_FILES]],
            "filesTruncated": len(files) > SUMMARY_FILES,
            "readme": _readme_start(files),
        }


def _readme_start(files: list[Entry]) -> str:
    top = [e for e in files if "/" not in e.path and e.path.lower().startswith("readme")]
    if not top:
        return ""
    text = top[0].data.decode("utf-8", errors="replace")
    return "\n".join(text.splitlines()[:README_LINES])


def with_parents(entries: Iterable[Entry]) -> list[Entry]:
    """The entries sorted by path, with every missing parent folder added."""
    by_path = {entry.path: entry for entry in entries}
    for path in list(by_path):
        parts = path.split("/")
        for depth in range(1, len(parts)):
            parent = "/".join(parts[:depth])
            by_path.setdefault(parent, Entry(parent, "dir"))
    return [by_path[path] for path in sorted(by_path)]


def build_snapshot(entries: Iterable[Entry]) -> Snapshot:
    """The deterministic tar of `entries` (see the module docstring) and its sha256."""
    ordered = tuple(with_parents(entries))
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for entry in ordered:
            tar.addfile(_tar_info(entry), io.BytesIO(entry.data) if entry.kind == "file" else None)
    raw = buffer.getvalue()
    return Snapshot(tar=raw, sha256=hashlib.sha256(raw).hexdigest(), entries=ordered)


def _tar_info(entry: Entry) -> tarfile.TarInfo:
    info = tarfile.TarInfo(entry.path)
    info.mtime = 0
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.mode = entry.mode
    if entry.kind == "dir":
        info.type = tarfile.DIRTYPE
    elif entry.kind == "symlink":
        info.type = tarfile.SYMTYPE
        info.linkname = entry.target
    else:
        info.size = len(entry.data)
    return info


def read_snapshot(raw: bytes) -> Snapshot:
    """A snapshot back from its tar bytes (ours: already checked when it was built)."""
    entries = []
    with tarfile.open(fileobj=io.BytesIO(raw), mode="r:") as tar:
        for member in tar:
            if member.isdir():
                entries.append(Entry(member.name, "dir"))
            elif member.issym():
                entries.append(Entry(member.name, "symlink", target=member.linkname))
            elif member.isfile():
                handle = tar.extractfile(member)
                data = handle.read() if handle else b""
                entries.append(Entry(member.name, "file", data, bool(member.mode & 0o100)))
    return Snapshot(tar=raw, sha256=hashlib.sha256(raw).hexdigest(), entries=tuple(entries))
