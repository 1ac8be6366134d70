"""Safe reading of uploaded archives (tar, tar.gz and other compressed tars, zip).

Nothing is extracted to disk here: every member is checked and read into memory within
the caps, and the first bad one refuses the whole archive (see `errors.py` for the
codes). Refused: absolute paths and `..`, entries under a symbolic link, links whose
target leaves the tree, device files, fifos and sockets, more entries than the file cap
and more expanded bytes than the size cap, whatever the headers claim (zip bombs are
read in chunks and stopped at the cap).
"""

from __future__ import annotations

import io
import posixpath
import stat
import tarfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field

from sisu_kodo.workspaces.errors import (
    ArchiveError,
    LinkEscapeError,
    SpecialFileError,
    TooLargeError,
    TooManyEntriesError,
    UnsafePathError,
)
from sisu_kodo.workspaces.snapshot import Caps, Entry

_CHUNK = 1 << 16
# Zip's "version made by" high byte for Unix: only then do external attributes hold a mode.
_ZIP_UNIX = 3


def read_archive(raw: bytes, caps: Caps, *, include_git: bool = False) -> list[Entry]:
    """The checked entries of a tar (optionally compressed) or zip archive.

    Raises:
        ArchiveError: (or a subclass) naming the first entry refused, or the archive.
    """
    if zipfile.is_zipfile(io.BytesIO(raw)):
        return _read_zip(raw, caps, include_git)
    return _read_tar(raw, caps, include_git)


@dataclass
class TreeBuilder:
    """Collects checked entries; shared by archives and repository trees."""

    caps: Caps
    include_git: bool = False
    entries: dict[str, Entry] = field(default_factory=dict)
    expanded: int = 0
    seen: int = 0

    def path_of(self, name: str) -> str | None:
        """The normalised relative path of `name`; None for the root and for `.git`."""
        if name.startswith("/") or (len(name) > 1 and name[1] == ":") or "\\" in name:
            raise UnsafePathError.at(name, "absolute path")
        parts = [part for part in name.split("/") if part not in ("", ".")]
        if ".." in parts:
            raise UnsafePathError.at(name, "path climbs out of the tree (`..`)")
        if not parts or (parts[0] == ".git" and not self.include_git):
            return None
        path = "/".join(parts)
        for depth in range(1, len(parts)):
            parent = self.entries.get("/".join(parts[:depth]))
            if parent is not None and parent.kind != "dir":
                raise UnsafePathError.at(name, f"lies under the {parent.kind} {parent.path!r}")
        return path

    def count(self, name: str) -> None:
        self.seen += 1
        if self.seen > self.caps.max_files:
            raise TooManyEntriesError.at(
                name,
                f"more than {self.caps.max_files} entries (SISU_WORKSPACE_MAX_FILES)",
                maxFiles=self.caps.max_files,
            )

    def budget(self) -> int:
        return self.caps.max_bytes - self.expanded

    def add_file(self, name: str, path: str, data: bytes, executable: bool) -> None:
        self.expanded += len(data)
        if self.expanded > self.caps.max_bytes:
            raise self.too_large(name)
        self.entries[path] = Entry(path, "file", data, executable)

    def too_large(self, name: str) -> TooLargeError:
        return TooLargeError.at(
            name,
            f"expands past {self.caps.max_bytes} bytes (SISU_WORKSPACE_MAX_BYTES)",
            maxBytes=self.caps.max_bytes,
        )

    def add_dir(self, path: str) -> None:
        self.entries.setdefault(path, Entry(path, "dir"))

    def add_symlink(self, name: str, path: str, target: str) -> None:
        if target.startswith("/") or _escapes(path, target):
            raise LinkEscapeError.at(name, f"links outside the tree (to {target!r})")
        self.entries[path] = Entry(path, "symlink", target=target)

    def result(self) -> list[Entry]:
        return [self.entries[path] for path in sorted(self.entries)]


def _escapes(path: str, target: str) -> bool:
    resolved = posixpath.normpath(posixpath.join(posixpath.dirname(path), target))
    return resolved == ".." or resolved.startswith("../")


def _read_tar(raw: bytes, caps: Caps, include_git: bool) -> list[Entry]:
    tree = TreeBuilder(caps, include_git)
    try:
        with tarfile.open(fileobj=io.BytesIO(raw), mode="r:*") as tar:
            for member in tar:
                _add_tar_member(tree, tar, member)
    except (tarfile.TarError, EOFError, OSError, ValueError) as exc:
        raise ArchiveError(
            f"the upload is not a readable tar, tar.gz or zip archive: {exc}",
            {"reason": str(exc)},
        ) from exc
    return tree.result()


def _add_tar_member(tree: TreeBuilder, tar: tarfile.TarFile, member: tarfile.TarInfo) -> None:
    name = member.name
    tree.count(name)
    if (
        member.ischr()
        or member.isblk()
        or member.isfifo()
        or not (member.isreg() or member.isdir() or member.issym() or member.islnk())
    ):
        raise SpecialFileError.at(name, "device files, fifos and sockets are not allowed")
    path = tree.path_of(name)
    if path is None:
        return
    if member.isdir():
        tree.add_dir(path)
    elif member.issym():
        tree.add_symlink(name, path, member.linkname)
    elif member.islnk():
        _add_hard_link(tree, name, path, member.linkname)
    else:
        if member.size > tree.budget():
            raise tree.too_large(name)
        handle = tar.extractfile(member)
        data = handle.read(tree.budget() + 1) if handle else b""
        tree.add_file(name, path, data, bool(member.mode & 0o100))


def _add_hard_link(tree: TreeBuilder, name: str, path: str, target: str) -> None:
    """A hard link to a file already in the tree becomes a copy of it; anything else escapes."""
    source = tree.entries.get(posixpath.normpath(target.lstrip("./")) if target else "")
    if target.startswith("/") or ".." in target.split("/") or source is None:
        raise LinkEscapeError.at(name, f"hard link to {target!r}, not a file of the tree")
    if source.kind != "file":
        raise LinkEscapeError.at(name, f"hard link to {target!r}, not a file")
    tree.add_file(name, path, source.data, source.executable)


def _read_zip(raw: bytes, caps: Caps, include_git: bool) -> list[Entry]:
    tree = TreeBuilder(caps, include_git)
    try:
        with zipfile.ZipFile(io.BytesIO(raw)) as archive:
            for info in archive.infolist():
                _add_zip_member(tree, archive, info)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError, ValueError) as exc:
        raise ArchiveError(
            f"the upload is not a readable zip archive: {exc}", {"reason": str(exc)}
        ) from exc
    return tree.result()


def _add_zip_member(tree: TreeBuilder, archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> None:
    name = info.filename
    tree.count(name)
    mode = info.external_attr >> 16 if info.create_system == _ZIP_UNIX else 0
    kind = stat.S_IFMT(mode)  # 0 when the writer recorded permissions only
    if kind and kind not in (stat.S_IFREG, stat.S_IFDIR, stat.S_IFLNK):
        raise SpecialFileError.at(name, "device files, fifos and sockets are not allowed")
    path = tree.path_of(name)
    if path is None:
        return
    if info.is_dir():
        tree.add_dir(path)
        return
    if info.file_size > tree.budget():
        raise tree.too_large(name)
    data = b"".join(_bounded_chunks(archive, info, tree.budget() + 1))
    if stat.S_ISLNK(mode):
        tree.add_symlink(name, path, data.decode("utf-8", errors="replace"))
    else:
        tree.add_file(name, path, data, bool(mode & 0o100))


def _bounded_chunks(archive: zipfile.ZipFile, info: zipfile.ZipInfo, limit: int) -> Iterator[bytes]:
    """The member's bytes up to `limit`, whatever its header declares (a lying bomb)."""
    read = 0
    with archive.open(info) as handle:
        while read < limit:
            chunk = handle.read(min(_CHUNK, limit - read))
            if not chunk:
                return
            read += len(chunk)
            yield chunk
