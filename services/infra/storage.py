"""Object storage: the one S3 client factory and the one place that names storage keys.

Every file the platform keeps is an S3 object addressed as `s3://bucket/key`. The same code
talks to the local nanio server, MinIO, R2 or AWS; only endpoint and credentials differ.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import lru_cache
from typing import IO, Any

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import ClientError

from services.infra.settings import get_settings

# Multipart in 8 MiB parts, 4 in flight: a multi-GB upload holds at most ~32 MiB, so many
# concurrent uploads still fit in memory (boto3's default keeps 10 parts in flight).
TRANSFER = TransferConfig(
    multipart_threshold=16 * 1024**2, multipart_chunksize=8 * 1024**2, max_concurrency=4
)


class StorageError(RuntimeError):
    """Object storage refused or failed a request."""


@lru_cache
def s3_client() -> Any:
    settings = get_settings()
    return boto3.client(
        "s3",
        endpoint_url=settings.s3_endpoint,
        aws_access_key_id=settings.s3_access_key,
        aws_secret_access_key=settings.s3_secret_key,
        region_name=settings.s3_region,
        config=Config(
            signature_version="s3v4",
            s3={"addressing_style": "path"},
            retries={"max_attempts": 5, "mode": "standard"},
            connect_timeout=5,
            read_timeout=60,
        ),
    )


def bucket() -> str:
    return get_settings().s3_bucket


def uri(key: str) -> str:
    return f"s3://{bucket()}/{key}"


def parse_uri(s3_uri: str) -> tuple[str, str]:
    if not s3_uri.startswith("s3://"):
        raise ValueError(f"not an s3:// URI: {s3_uri!r}")
    bucket_name, _, key = s3_uri[5:].partition("/")
    if not bucket_name:
        raise ValueError(f"s3:// URI without a bucket: {s3_uri!r}")
    return bucket_name, key


# --- key layout (ARCHITECTURE.md, "Object storage") ----------------------------------------


def dataset_version_prefix(project_id: int, dataset_id: int, version: int) -> str:
    return f"projects/{project_id}/datasets/{dataset_id}/v{version}/"


# Objects of a dataset version, under its prefix.
DATASET_MANIFEST = "manifest.json"
DATASET_REPORT = "report.json"
DATASET_STATS = "stats.json"
DATASET_THUMBS = "thumbs/"
DATASET_PLAIN_THUMBS = "thumbs-plain/"  # without labels drawn: the prediction views draw their own


def job_prefix(project_id: int, job_id: int) -> str:
    return f"projects/{project_id}/jobs/{job_id}/"


# --- operations --------------------------------------------------------------------------------


def ensure_bucket() -> None:
    client = s3_client()
    try:
        client.head_bucket(Bucket=bucket())
    except ClientError:
        client.create_bucket(Bucket=bucket())


def upload_fileobj(fileobj: IO[bytes], key: str, content_type: str = "application/octet-stream") -> str:
    s3_client().upload_fileobj(
        fileobj, bucket(), key, ExtraArgs={"ContentType": content_type}, Config=TRANSFER
    )
    return uri(key)


def put_bytes(key: str, data: bytes, content_type: str = "application/octet-stream") -> str:
    s3_client().put_object(Bucket=bucket(), Key=key, Body=data, ContentType=content_type)
    return uri(key)


def get_bytes(s3_uri: str) -> bytes:
    bucket_name, key = parse_uri(s3_uri)
    data: bytes = s3_client().get_object(Bucket=bucket_name, Key=key)["Body"].read()
    return data


def list_keys(prefix: str) -> Iterator[str]:
    """All keys under a prefix, paged with list_objects_v2 (never v1: nanio ignores Marker)."""
    paginator = s3_client().get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket(), Prefix=prefix):
        for item in page.get("Contents", []):
            yield item["Key"]


def exists(s3_uri: str) -> bool:
    bucket_name, key = parse_uri(s3_uri)
    try:
        s3_client().head_object(Bucket=bucket_name, Key=key)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in {"404", "NoSuchKey", "NotFound"}:
            return False
        raise
    return True


def delete_prefix(prefix: str) -> int:
    """Delete every object under a prefix (used to leave nothing behind after a failed write)."""
    keys = list(list_keys(prefix))
    for start in range(0, len(keys), 1000):
        chunk = keys[start : start + 1000]
        s3_client().delete_objects(
            Bucket=bucket(), Delete={"Objects": [{"Key": k} for k in chunk], "Quiet": True}
        )
    return len(keys)


def copy(source_uri: str, target_key: str) -> str:
    """Server-side copy of one object to `target_key` in the platform bucket."""
    bucket_name, key = parse_uri(source_uri)
    s3_client().copy_object(Bucket=bucket(), Key=target_key, CopySource={"Bucket": bucket_name, "Key": key})
    return uri(target_key)


def presigned_get(s3_uri: str, *, expires_s: int = 900, filename: str | None = None) -> str:
    """A time-limited download URL for one object (the browser fetches it from S3 directly)."""
    bucket_name, key = parse_uri(s3_uri)
    params: dict[str, Any] = {"Bucket": bucket_name, "Key": key}
    if filename:
        params["ResponseContentDisposition"] = f'attachment; filename="{filename}"'
    url: str = s3_client().generate_presigned_url("get_object", Params=params, ExpiresIn=expires_s)
    return url


def presigned_gets(s3_uris: list[str], *, expires_s: int = 900) -> list[str]:
    """Time-limited URLs for many objects with one client (a page of thumbnails)."""
    client = s3_client()
    urls: list[str] = []
    for s3_uri in s3_uris:
        bucket_name, key = parse_uri(s3_uri)
        params = {"Bucket": bucket_name, "Key": key}
        urls.append(client.generate_presigned_url("get_object", Params=params, ExpiresIn=expires_s))
    return urls


def object_size(s3_uri: str) -> int | None:
    bucket_name, key = parse_uri(s3_uri)
    try:
        return int(s3_client().head_object(Bucket=bucket_name, Key=key)["ContentLength"])
    except ClientError:
        return None


def list_objects(prefix: str) -> Iterator[tuple[str, int]]:
    """(key, size in bytes) of every object under a prefix."""
    paginator = s3_client().get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket(), Prefix=prefix):
        for item in page.get("Contents", []):
            yield item["Key"], int(item.get("Size", 0))


def inference_key(project_id: int, name: str) -> str:
    return f"projects/{project_id}/inference/{name}"
