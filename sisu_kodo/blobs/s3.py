"""The S3-compatible blob store (`boto3`): `<prefix><sha256>` objects in one bucket.

Workers on several machines share a run's workspace and outputs through it. The endpoint
and keys come from Settings; without keys boto3's default chain applies (instance roles).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from sisu_kodo.blobs.port import BlobMissingError, checked_key, verified
from sisu_kodo.canonical import sha256_hex

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


@dataclass(frozen=True)
class S3Location:
    bucket: str
    prefix: str = ""
    endpoint_url: str | None = None
    region: str | None = None
    access_key_id: str | None = None
    secret_access_key: str | None = None


class S3BlobStore:
    name = "s3"

    def __init__(self, location: S3Location, client: S3Client | None = None) -> None:
        self.location = location
        self._client = client or s3_client(location)

    def key(self, sha256: str) -> str:
        return f"{self.location.prefix}{checked_key(sha256)}"

    def put(self, data: bytes) -> str:
        sha256 = sha256_hex(data)
        if not self.exists(sha256):
            # One PUT is atomic in S3: the object appears whole; a second PUT of the same
            # key writes the same bytes.
            self._client.put_object(Bucket=self.location.bucket, Key=self.key(sha256), Body=data)
        return sha256

    def get(self, sha256: str) -> bytes:
        from botocore.exceptions import ClientError

        try:
            answer = self._client.get_object(Bucket=self.location.bucket, Key=self.key(sha256))
        except ClientError as exc:
            if _status(exc) == 404:
                raise BlobMissingError(
                    f"blob {sha256} is not in s3://{self.location.bucket}", {"sha256": sha256}
                ) from exc
            raise
        return verified(sha256, answer["Body"].read(), f"s3://{self.location.bucket}")

    def exists(self, sha256: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self._client.head_object(Bucket=self.location.bucket, Key=self.key(sha256))
        except ClientError as exc:
            if _status(exc) == 404:
                return False
            raise
        return True


def _status(exc: Exception) -> int | None:
    response = getattr(exc, "response", {}) or {}
    status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return int(status) if status is not None else None


def s3_client(location: S3Location) -> S3Client:
    """A client for `location`; without keys, boto3's default chain (instance roles...)."""
    import boto3
    from botocore.config import Config

    session = boto3.session.Session(
        aws_access_key_id=location.access_key_id,
        aws_secret_access_key=location.secret_access_key,
        region_name=location.region or "us-east-1",
    )
    return session.client(
        "s3",
        endpoint_url=location.endpoint_url,
        config=Config(retries={"max_attempts": 3, "mode": "standard"}),
    )
