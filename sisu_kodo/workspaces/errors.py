"""Why a workspace is refused: stable codes, each a 400 naming the offending entry or ref.

    InvalidRequestError (400)
    ├── ArchiveError (archive_unreadable: not a tar, tar.gz or zip, or corrupt)
    │   ├── UnsafePathError (archive_unsafe_path: absolute, `..`, or under a link)
    │   ├── LinkEscapeError (archive_link_escape: a link pointing outside the tree)
    │   ├── SpecialFileError (archive_special_file: device, fifo, socket)
    │   ├── TooManyEntriesError (archive_too_many_entries: past SISU_WORKSPACE_MAX_FILES)
    │   └── TooLargeError (archive_too_large: expanded past SISU_WORKSPACE_MAX_BYTES)
    ├── UnsupportedUploadError (workspace_unsupported_type: a Content-Type we cannot read)
    ├── RepositoryUnreadableError (workspace_unreadable: no repository at the URL)
    └── UnknownRefError (workspace_unknown_ref: the repository has no such ref)
    ConflictError (409)
    └── WorkspaceMismatchError (workspace_mismatch: the snapshot is not the one decided on)

Constructors take (message, details) only (AppError), so they survive DBOS pickling.
"""

from __future__ import annotations

from typing import Any, Self

from sisu_kodo.errors import ConflictError, InvalidRequestError


class ArchiveError(InvalidRequestError):
    code = "archive_unreadable"

    @classmethod
    def at(cls, entry: str, reason: str, **details: Any) -> Self:
        """The error for one archive entry, named in the message and in the details."""
        shown = entry if len(entry) <= 200 else f"{entry[:200]}..."
        return cls(f"archive entry {shown!r}: {reason}", {"entry": shown, **details})


class UnsafePathError(ArchiveError):
    code = "archive_unsafe_path"


class LinkEscapeError(ArchiveError):
    code = "archive_link_escape"


class SpecialFileError(ArchiveError):
    code = "archive_special_file"


class TooManyEntriesError(ArchiveError):
    code = "archive_too_many_entries"


class TooLargeError(ArchiveError):
    code = "archive_too_large"


class UnsupportedUploadError(InvalidRequestError):
    code = "workspace_unsupported_type"


class RepositoryUnreadableError(InvalidRequestError):
    code = "workspace_unreadable"


class UnknownRefError(InvalidRequestError):
    code = "workspace_unknown_ref"


class WorkspaceMismatchError(ConflictError):
    """The gate would approve a workspace other than the decided one (or its stored
    snapshot no longer hashes to it)."""

    code = "workspace_mismatch"
