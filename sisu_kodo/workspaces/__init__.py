"""Workspaces: the user's files a run works on.

Sources (`git.py`: a repository cloned shallowly; `archives.py`: an uploaded tar or zip,
safely read), the deterministic snapshot and its manifest (`snapshot.py`), and what tasks
changed (`diffs.py`). `capture` is the entry point the run start uses.
"""

from __future__ import annotations

from sisu_kodo.workspaces.archives import read_archive
from sisu_kodo.workspaces.capture import caps_of, capture_git, snapshot_upload
from sisu_kodo.workspaces.diffs import diff_files, files_of, read_work_tree
from sisu_kodo.workspaces.snapshot import Caps, Entry, Snapshot, build_snapshot, read_snapshot

__all__ = [
    "Caps",
    "Entry",
    "Snapshot",
    "build_snapshot",
    "caps_of",
    "capture_git",
    "diff_files",
    "files_of",
    "read_archive",
    "read_snapshot",
    "read_work_tree",
    "snapshot_upload",
]
