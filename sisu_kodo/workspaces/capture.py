"""Turning a source into a snapshot: an upload's archive, or a git repository at a ref."""

from __future__ import annotations

from dataclasses import dataclass

from sisu_kodo.config import Settings
from sisu_kodo.contracts.workspaces import GitSource
from sisu_kodo.workspaces import git
from sisu_kodo.workspaces.archives import read_archive
from sisu_kodo.workspaces.snapshot import Caps, Snapshot, build_snapshot


def caps_of(settings: Settings) -> Caps:
    return Caps(max_files=settings.workspaces.max_files, max_bytes=settings.workspaces.max_bytes)


@dataclass(frozen=True)
class GitCapture:
    snapshot: Snapshot
    commit: str


def snapshot_upload(raw: bytes, caps: Caps) -> Snapshot:
    """The snapshot of an uploaded archive; raises an ArchiveError naming a refused entry."""
    return build_snapshot(read_archive(raw, caps))


def capture_git(source: GitSource, caps: Caps) -> GitCapture:
    """The snapshot of `source` at its ref, and the commit the ref resolved to."""
    cloned = git.clone(source.url, source.ref, caps, include_git=source.includeGit)
    return GitCapture(snapshot=build_snapshot(cloned.entries), commit=cloned.commit)
