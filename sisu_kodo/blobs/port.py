"""The blob-store port: immutable bytes keyed by their sha256.

`put` is idempotent (the key is the content's hash, so a re-run after a crash writes the
same object or finds it there); `get` checks the bytes against the key, so a store that
lost or altered an object never hands out the wrong content.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Protocol

from sisu_kodo.canonical import sha256_hex
from sisu_kodo.errors import AppError

_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class BlobMissingError(AppError):
    code = "blob_missing"


class BlobIntegrityError(AppError):
    """The stored bytes no longer hash to their key."""

    code = "blob_integrity"


class BlobStore(Protocol):
    name: str

    def put(self, data: bytes) -> str:
        """Store `data` (once) and return its sha256."""
        ...

    def get(self, sha256: str) -> bytes:
        """The bytes stored under `sha256`; raises BlobMissingError or BlobIntegrityError."""
        ...

    def exists(self, sha256: str) -> bool: ...


@dataclass(frozen=True)
class Spill:
    """Where artifacts larger than `inline_max_bytes` go instead of their row."""

    store: BlobStore
    inline_max_bytes: int

    def wants(self, content: bytes) -> bool:
        return len(content) > self.inline_max_bytes


def checked_key(sha256: str) -> str:
    if not _SHA256.match(sha256):
        raise BlobMissingError(f"not a sha256 blob key: {sha256[:80]!r}", {"sha256": sha256[:80]})
    return sha256


def verified(sha256: str, data: bytes, where: str) -> bytes:
    """`data` if it hashes to `sha256`, else BlobIntegrityError naming the store."""
    actual = sha256_hex(data)
    if actual != sha256:
        raise BlobIntegrityError(
            f"blob {sha256} in {where} now hashes to {actual}", {"sha256": sha256, "actual": actual}
        )
    return data
