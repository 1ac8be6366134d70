"""The filesystem blob store (the default): `<root>/<aa>/<sha256>`, written atomically."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from sisu_kodo.blobs.port import BlobMissingError, checked_key, verified
from sisu_kodo.canonical import sha256_hex


class FilesystemBlobStore:
    name = "fs"

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, sha256: str) -> Path:
        key = checked_key(sha256)
        return self.root / key[:2] / key

    def put(self, data: bytes) -> str:
        sha256 = sha256_hex(data)
        target = self.path(sha256)
        if target.exists():
            return sha256
        target.parent.mkdir(parents=True, exist_ok=True)
        # A temp file renamed into place: readers see the whole blob or none of it.
        fd, temporary = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            os.replace(temporary, target)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        return sha256

    def get(self, sha256: str) -> bytes:
        try:
            data = self.path(sha256).read_bytes()
        except FileNotFoundError as exc:
            raise BlobMissingError(
                f"blob {sha256} is not in {self.root}", {"sha256": sha256}
            ) from exc
        return verified(sha256, data, str(self.root))

    def exists(self, sha256: str) -> bool:
        return self.path(sha256).is_file()
