"""Both blob stores through the port: the filesystem one, and S3 against a real S3 API
server (moto in server mode, a subprocess on loopback)."""

from __future__ import annotations

from pathlib import Path

import pytest

from sisu_kodo.blobs import (
    BlobIntegrityError,
    BlobMissingError,
    BlobStore,
    FilesystemBlobStore,
    create_blob_store,
)
from sisu_kodo.blobs.s3 import S3BlobStore
from sisu_kodo.canonical import sha256_hex
from sisu_kodo.config import load_settings
from tests.fixtures.s3 import S3Server

pytestmark = pytest.mark.integration


def check_store(store: BlobStore) -> None:
    data = b"snapshot bytes" * 1000
    key = store.put(data)
    assert key == sha256_hex(data)
    assert store.put(data) == key, "putting the same bytes again is a no-op"
    assert store.exists(key) and store.get(key) == data
    missing = sha256_hex(b"never stored")
    assert not store.exists(missing)
    with pytest.raises(BlobMissingError):
        store.get(missing)


def test_filesystem_store(tmp_path: Path) -> None:
    store = FilesystemBlobStore(tmp_path / "blobs")
    check_store(store)
    key = store.put(b"original")
    store.path(key).write_bytes(b"tampered")
    with pytest.raises(BlobIntegrityError):
        store.get(key)


def test_s3_store_against_a_real_s3_api(s3: S3Server) -> None:
    bucket = s3.new_bucket()
    store = create_blob_store(load_settings(**s3.env(bucket)))
    assert isinstance(store, S3BlobStore)
    check_store(store)
    # Another process's store on the same bucket sees the same objects.
    other = S3BlobStore(s3.location(bucket))
    assert other.get(store.put(b"shared")) == b"shared"
