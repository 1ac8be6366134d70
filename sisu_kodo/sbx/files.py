"""Working files of a sandbox task: decoding files in and building capped, hashed files out.

Every provider shares these rules so a task's files look the same whatever ran it:
paths are relative and never climb out of the work folder; a file out carries the
sha256 and size of the WHOLE file, its content up to a cap, and `truncated` when
the cap cut it.
"""

from __future__ import annotations

import base64
import fnmatch
import hashlib
from collections.abc import Callable, Iterable
from pathlib import PurePosixPath

from sisu_kodo.contracts.sandbox import FileIn, FileOut

ArtifactResolver = Callable[[str], bytes]
"""Turns a FileIn's artifactUri into the file's bytes (the artifact store owns this)."""


SnapshotReader = Callable[[str], bytes]
"""Turns a workspace snapshot's sha256 into its tar bytes (the blob store owns this)."""


class FileTransferError(Exception):
    """A working file could not be placed in, or collected from, the sandbox."""


def snapshot_bytes(reader: SnapshotReader | None, sha256: str) -> bytes:
    """The snapshot's tar, checked against its sha256 by the store; any failure means the
    workspace never arrived (UPLOAD_FAIL, retried as the taxonomy says)."""
    if reader is None:
        raise FileTransferError(f"workspace {sha256}: this provider has no blob store")
    try:
        return reader(sha256)
    except Exception as exc:  # any store failure (missing, altered, unreachable)
        raise FileTransferError(f"workspace {sha256} cannot be read: {exc}") from exc


def safe_relpath(path: str) -> PurePosixPath:
    """The path as a normalised relative path, refusing absolute paths and `..`."""
    rel = PurePosixPath(path)
    if rel.is_absolute() or ".." in rel.parts or not rel.parts or str(rel) == ".":
        raise FileTransferError(f"unsafe work-folder path {path!r}")
    return rel


def file_in_bytes(file: FileIn, resolver: ArtifactResolver | None) -> bytes:
    """The content of a file in, inline or resolved from the artifact store."""
    if file.contentB64 is not None:
        try:
            return base64.b64decode(file.contentB64, validate=True)
        except ValueError as exc:
            raise FileTransferError(f"{file.path}: contentB64 is not base64") from exc
    if file.artifactUri is not None:
        if resolver is None:
            raise FileTransferError(f"{file.path}: no artifact resolver for {file.artifactUri}")
        try:
            return resolver(file.artifactUri)
        except Exception as exc:  # any resolver failure means the file never arrived
            raise FileTransferError(f"{file.path}: cannot resolve {file.artifactUri}") from exc
    raise FileTransferError(f"{file.path}: neither contentB64 nor artifactUri")


def matches_any(rel: str, patterns: Iterable[str]) -> bool:
    """Whether a work-folder path matches one of the request's collect globs."""
    # fnmatch's `*` already crosses folders; a leading `**/` must also match the top level.
    return any(
        fnmatch.fnmatch(rel, p) or (p.startswith("**/") and fnmatch.fnmatch(rel, p[3:]))
        for p in patterns
    )


def file_out(rel: str, chunks: Iterable[bytes], cap: int) -> FileOut:
    """A file out from its content stream: hash and size of everything, content up to `cap`."""
    digest = hashlib.sha256()
    kept = bytearray()
    size = 0
    for chunk in chunks:
        digest.update(chunk)
        size += len(chunk)
        if len(kept) < cap:
            kept += chunk[: cap - len(kept)]
    return FileOut(
        path=rel,
        sha256=digest.hexdigest(),
        size=size,
        contentB64=base64.b64encode(bytes(kept)).decode(),
        truncated=size > cap,
    )
