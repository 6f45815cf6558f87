"""Reading a zip that lives in S3 without downloading it: a seekable file over Range GETs.

`zipfile` reads the central directory and then only the entries asked for, so a gallery page
of a 2 GB archive costs a few small requests, not 2 GB.
"""

from __future__ import annotations

import io
from typing import Any

from services.infra import storage


class S3RangeFile(io.RawIOBase):
    def __init__(self, s3_uri: str) -> None:
        self.bucket, self.key = storage.parse_uri(s3_uri)
        self.client: Any = storage.s3_client()
        self.size = int(self.client.head_object(Bucket=self.bucket, Key=self.key)["ContentLength"])
        self.position = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.position, io.SEEK_END: self.size}[whence]
        self.position = max(0, base + offset)
        return self.position

    def readinto(self, buffer: Any) -> int:
        if self.position >= self.size or len(buffer) == 0:
            return 0
        end = min(self.size, self.position + len(buffer)) - 1
        body = self.client.get_object(Bucket=self.bucket, Key=self.key, Range=f"bytes={self.position}-{end}")
        data = body["Body"].read()
        buffer[: len(data)] = data
        self.position += len(data)
        return len(data)


def open_remote(s3_uri: str, buffer_size: int = 256 * 1024) -> io.BufferedReader:
    return io.BufferedReader(S3RangeFile(s3_uri), buffer_size=buffer_size)
