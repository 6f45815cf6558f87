"""Object storage access for the trainer (S3 API only, so MinIO, R2, AWS and nanio all work)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from trainer_runner.settings import TrainerSettings

S3Client = Any  # boto3 clients are generated at run time; no static type ships with boto3

MULTIPART_THRESHOLD = 16 * 1024 * 1024


@dataclass(frozen=True)
class S3Uri:
    """A parsed `s3://bucket/key` address."""

    bucket: str
    key: str

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    def join(self, *parts: str) -> S3Uri:
        """The address of `parts` below this one, treating this key as a folder."""
        prefix = self.key if not self.key or self.key.endswith("/") else f"{self.key}/"
        return S3Uri(self.bucket, prefix + "/".join(p.strip("/") for p in parts))


def parse_s3_uri(uri: str) -> S3Uri:
    """Split an `s3://bucket/key` URI; anything else is a ValueError (no local paths cross)."""
    if not uri.startswith("s3://"):
        raise ValueError(f"not an s3:// URI: {uri!r}")
    bucket, _, key = uri[len("s3://") :].partition("/")
    if not bucket:
        raise ValueError(f"s3 URI without a bucket: {uri!r}")
    return S3Uri(bucket, key)


def make_s3_client(settings: TrainerSettings) -> S3Client:
    """A boto3 client with path-style addressing and SigV4: every S3-compatible server takes it."""
    import boto3
    from botocore.config import Config

    config = Config(
        signature_version="s3v4",
        s3={"addressing_style": "path"},
        retries={"max_attempts": 5, "mode": "standard"},
        connect_timeout=10,
        read_timeout=120,
    )
    return boto3.client(
        "s3",
        endpoint_url=settings.s3_endpoint_url or None,
        aws_access_key_id=settings.s3_access_key or None,
        aws_secret_access_key=settings.s3_secret_key or None,
        region_name=settings.s3_region,
        config=config,
    )


def _transfer_config() -> Any:
    from boto3.s3.transfer import TransferConfig

    return TransferConfig(
        multipart_threshold=MULTIPART_THRESHOLD, multipart_chunksize=MULTIPART_THRESHOLD
    )


def download_file(client: S3Client, uri: S3Uri, dest: Path) -> Path:
    """Download one object to `dest`, creating its folder."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    client.download_file(uri.bucket, uri.key, str(dest), Config=_transfer_config())
    return dest


def download_prefix(client: S3Client, uri: S3Uri, dest: Path) -> list[Path]:
    """Download every object under a prefix, keeping relative names (list v2: nanio ignores v1)."""
    prefix = uri.key if not uri.key or uri.key.endswith("/") else f"{uri.key}/"
    paths: list[Path] = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=uri.bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            rel = PurePosixPath(obj["Key"][len(prefix) :])
            if not rel.parts or rel.is_absolute() or ".." in rel.parts:
                continue
            paths.append(
                download_file(client, S3Uri(uri.bucket, obj["Key"]), dest.joinpath(*rel.parts))
            )
    return paths


def upload_file(client: S3Client, path: Path, uri: S3Uri) -> str:
    """Upload a local file (multipart above the threshold) and return its s3:// URI."""
    client.upload_file(str(path), uri.bucket, uri.key, Config=_transfer_config())
    return str(uri)


def upload_bytes(client: S3Client, data: bytes, uri: S3Uri, content_type: str) -> str:
    """Put a small object (a JSON document, a PNG) and return its s3:// URI."""
    client.put_object(Bucket=uri.bucket, Key=uri.key, Body=data, ContentType=content_type)
    return str(uri)


def upload_json(client: S3Client, document: Any, uri: S3Uri) -> str:
    import json

    return upload_bytes(client, json.dumps(document).encode(), uri, "application/json")
