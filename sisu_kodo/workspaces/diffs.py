"""What a task changed in its workspace: a unified diff `git apply` accepts, plus binaries.

Text files (UTF-8, no NUL byte) are diffed with git's headers (`diff --git`, new and
deleted file modes, `\\ No newline at end of file`); binary changes are listed by path
and sha256 only. Caches tools write while they run (`__pycache__`, `.pytest_cache`...)
and our own `.sisu` folder are never part of a diff.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Iterable, Mapping
from pathlib import Path

from sisu_kodo.canonical import sha256_hex
from sisu_kodo.contracts.workspaces import ChangedFile, TaskDiff, WorkspaceDiff
from sisu_kodo.workspaces.errors import TooLargeError, TooManyEntriesError
from sisu_kodo.workspaces.snapshot import Caps, Entry

IGNORED_PARTS = frozenset(
    {"__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache", ".sisu", ".git"}
)
IGNORED_SUFFIXES = (".pyc",)
_NO_NEWLINE = "\\ No newline at end of file\n"
# What a task may leave in its work folder for the diff to read (held in memory).
WORK_TREE_CAPS = Caps(max_files=200_000, max_bytes=1 << 30)


def ignored(path: str) -> bool:
    return bool(IGNORED_PARTS.intersection(path.split("/"))) or path.endswith(IGNORED_SUFFIXES)


def files_of(entries: Iterable[Entry]) -> dict[str, bytes]:
    """The regular files of a tree that a diff looks at."""
    return {e.path: e.data for e in entries if e.kind == "file" and not ignored(e.path)}


def read_work_tree(root: Path, caps: Caps = WORK_TREE_CAPS) -> dict[str, bytes]:
    """The regular files under `root` (never following links: the task owns the folder).

    Raises:
        ArchiveError: past `caps` (too many files or bytes to diff).
    """
    found: dict[str, bytes] = {}
    total = 0
    for folder, subdirs, names in os.walk(root):
        subdirs[:] = [d for d in subdirs if d not in IGNORED_PARTS]
        for name in names:
            path = Path(folder) / name
            rel = path.relative_to(root).as_posix()
            if ignored(rel) or path.is_symlink() or not path.is_file():
                continue
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
            with os.fdopen(fd, "rb") as handle:
                found[rel] = handle.read(caps.max_bytes - total + 1)
            total += len(found[rel])
            if total > caps.max_bytes:
                raise TooLargeError.at(rel, f"the work folder holds over {caps.max_bytes} bytes")
            if len(found) > caps.max_files:
                raise TooManyEntriesError.at(rel, f"over {caps.max_files} files to diff")
    return found


def diff_files(before: Mapping[str, bytes], after: Mapping[str, bytes]) -> WorkspaceDiff:
    """The diff from `before` to `after` ({path: bytes}), paths in sorted order."""
    patch: list[str] = []
    changed: list[ChangedFile] = []
    for path in sorted(set(before) | set(after)):
        old, new = before.get(path), after.get(path)
        if old == new or ignored(path):
            continue
        status = "added" if old is None else "deleted" if new is None else "modified"
        old_text, new_text = _text(old), _text(new)
        binary = old_text is None or new_text is None
        changed.append(
            ChangedFile(
                path=path,
                status=status,
                binary=binary,
                sha256=sha256_hex(new) if new is not None else None,
                size=len(new or b""),
            )
        )
        if not binary:
            patch.extend(_file_patch(path, status, old_text or "", new_text or ""))
    return WorkspaceDiff(patch="".join(patch), files=changed)


def _text(data: bytes | None) -> str | None:
    """The file as text; "" for a missing one; None for binary content."""
    if data is None:
        return ""
    if b"\x00" in data:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _file_patch(path: str, status: str, old: str, new: str) -> list[str]:
    header = [f"diff --git a/{path} b/{path}\n"]
    if status == "added":
        header.append("new file mode 100644\n")
    elif status == "deleted":
        header.append("deleted file mode 100644\n")
    hunks = list(
        difflib.unified_diff(
            old.splitlines(keepends=True),
            new.splitlines(keepends=True),
            fromfile="/dev/null" if status == "added" else f"a/{path}",
            tofile="/dev/null" if status == "deleted" else f"b/{path}",
        )
    )
    return header + [_terminated(line) for line in hunks]


def _terminated(line: str) -> str:
    return line if line.endswith("\n") else f"{line}\n{_NO_NEWLINE}"


def conflicts(diffs: Iterable[TaskDiff]) -> list[str]:
    """Paths changed by more than one task."""
    seen: dict[str, int] = {}
    for diff in diffs:
        for file in diff.files:
            seen[file.path] = seen.get(file.path, 0) + 1
    return sorted(path for path, count in seen.items() if count > 1)
