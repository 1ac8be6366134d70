"""Blob stores: bytes keyed by sha256, on the filesystem (default) or in S3.

`create_blob_store(settings)` is the entry point; the port is `BlobStore`.
"""

from __future__ import annotations

from sisu_kodo.blobs.fs import FilesystemBlobStore
from sisu_kodo.blobs.port import BlobIntegrityError, BlobMissingError, BlobStore
from sisu_kodo.config import BlobStoreName, ConfigError, Settings

__all__ = [
    "BlobIntegrityError",
    "BlobMissingError",
    "BlobStore",
    "FilesystemBlobStore",
    "create_blob_store",
]


def create_blob_store(settings: Settings) -> BlobStore:
    """The store the settings name; raises ConfigError when S3 lacks a bucket or boto3."""
    group = settings.workspaces
    if group.blob_store is BlobStoreName.FS:
        root = group.blob_dir or settings.topology.resolved_data_dir / "blobs"
        return FilesystemBlobStore(root)
    if not group.s3_bucket:
        raise ConfigError("invalid SISU_BLOB_STORE='s3': SISU_S3_BUCKET is not set")
    try:
        from sisu_kodo.blobs.s3 import S3BlobStore, S3Location

        location = S3Location(
            bucket=group.s3_bucket,
            prefix=group.s3_prefix,
            endpoint_url=group.s3_endpoint_url,
            region=group.s3_region,
            access_key_id=_secret(group.s3_access_key_id),
            secret_access_key=_secret(group.s3_secret_access_key),
        )
        return S3BlobStore(location)
    except ImportError as exc:
        raise ConfigError(
            f"invalid SISU_BLOB_STORE='s3': boto3 is not installed (pip install 'sisu-kodo[s3]'):"
            f" {exc}"
        ) from exc


def _secret(value: object) -> str | None:
    getter = getattr(value, "get_secret_value", None)
    return str(getter()) if getter else None
