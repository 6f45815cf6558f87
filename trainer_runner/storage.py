"""Object storage access for the trainer (S3 API only, so MinIO, R2, AWS and nanio all work).

Every transfer is retried by tenacity while the failure is transient (connection refused,
timeouts, 5xx, SlowDown), with exponential backoff and jitter, for at most `budget_s` seconds
(`TRAINER_S3_RETRY_BUDGET_S`). A function returns only once the object is stored, so a caller
that records the returned URI never reports an object that is not there.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, TypeVar

from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_delay,
    wait_exponential_jitter,
)

from trainer_runner.settings import TrainerSettings

log = logging.getLogger(__name__)
T = TypeVar("T")
DEFAULT_RETRY_BUDGET_S = 180.0

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

    # Short timeouts and no botocore retries: a frozen server must surface as an error within
    # seconds, so that `with_retries` (one budget for the whole transfer) stays in charge.
    config = Config(
        signature_version="s3v4",
        s3={"addressing_style": "path"},
        retries={"total_max_attempts": 1, "mode": "standard"},  # with_retries retries
        connect_timeout=settings.s3_connect_timeout_s,
        read_timeout=settings.s3_read_timeout_s,
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

    return TransferConfig(multipart_threshold=MULTIPART_THRESHOLD, multipart_chunksize=MULTIPART_THRESHOLD)


def is_transient(exc: BaseException) -> bool:
    """Whether a later try may succeed; looks through boto3's wrappers (S3UploadFailedError,
    RetriesExceededError) at the error that caused them."""
    from trainer_runner.errors import classify

    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if classify(current) == "transient":
            return True
        inner = getattr(current, "last_exception", None)
        current = inner if isinstance(inner, BaseException) else current.__cause__ or current.__context__
    return False


def _log_retry(what: str) -> Callable[[RetryCallState], None]:
    def before_sleep(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        log.warning(
            "object storage unavailable; retrying",
            extra={
                "operation": what,
                "try": state.attempt_number,
                "retry_in_s": round(state.upcoming_sleep, 1),
                "elapsed_s": round(state.seconds_since_start or 0.0, 1),
                "error": f"{type(exc).__name__}: {exc}",
            },
        )

    return before_sleep


def with_retries(what: str, fn: Callable[[], T], budget_s: float = DEFAULT_RETRY_BUDGET_S) -> T:
    """Run `fn`, retrying transient storage errors with backoff and jitter within `budget_s`;
    the last error is raised when the budget is spent or the error is permanent."""
    retrying = Retrying(
        retry=retry_if_exception(is_transient),
        wait=wait_exponential_jitter(multiplier=1, max=15, jitter=1),
        stop=stop_after_delay(max(budget_s, 0.0)),
        before_sleep=_log_retry(what),
        reraise=True,
    )
    return retrying(fn)


def download_file(client: S3Client, uri: S3Uri, dest: Path, budget_s: float = DEFAULT_RETRY_BUDGET_S) -> Path:
    """Download one object to `dest`, creating its folder."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    with_retries(
        f"download {uri}",
        lambda: client.download_file(uri.bucket, uri.key, str(dest), Config=_transfer_config()),
        budget_s,
    )
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
            paths.append(download_file(client, S3Uri(uri.bucket, obj["Key"]), dest.joinpath(*rel.parts)))
    return paths


def upload_file(client: S3Client, path: Path, uri: S3Uri, budget_s: float = DEFAULT_RETRY_BUDGET_S) -> str:
    """Upload a local file (multipart above the threshold); its s3:// URI once it is stored."""
    with_retries(
        f"upload {uri}",
        lambda: client.upload_file(str(path), uri.bucket, uri.key, Config=_transfer_config()),
        budget_s,
    )
    return str(uri)


def upload_bytes(
    client: S3Client,
    data: bytes,
    uri: S3Uri,
    content_type: str,
    budget_s: float = DEFAULT_RETRY_BUDGET_S,
) -> str:
    """Put a small object (a JSON document, a PNG); its s3:// URI once it is stored."""
    with_retries(
        f"upload {uri}",
        lambda: client.put_object(Bucket=uri.bucket, Key=uri.key, Body=data, ContentType=content_type),
        budget_s,
    )
    return str(uri)


def upload_json(client: S3Client, document: Any, uri: S3Uri, budget_s: float = DEFAULT_RETRY_BUDGET_S) -> str:
    import json

    return upload_bytes(client, json.dumps(document).encode(), uri, "application/json", budget_s)
