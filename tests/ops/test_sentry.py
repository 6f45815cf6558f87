"""Error tracking (sentry-sdk) in the backend and in the trainer, against a local HTTP sink that
receives the envelopes as a Sentry server would: the events carry the log ids as tags, and no
planted secret (a password, a bearer token, the callback secret) leaves the process."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import threading
import zlib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

pytestmark = pytest.mark.ops
PLANTED = "planted-Secret-4f7c1b"

# The same failure in both halves: a local variable, an exception text and an Authorization
# header value each hold the secret; the scope's ids must come out as tags.
BACKEND = f"""
import logging
from services.infra import errortracking, logs
assert errortracking.init("worker")
log = logging.getLogger("vtp.test")
with logs.bound(request_id="req-abc123", job_id=42, attempt=2, user_id=7, project_id=3):
    password = "{PLANTED}"
    headers = {{"Authorization": "Bearer {PLANTED}"}}
    try:
        raise RuntimeError("upload refused: token={PLANTED} Authorization: Bearer {PLANTED}")
    except RuntimeError:
        log.exception("dispatch failed for %s", headers)
import sentry_sdk
sentry_sdk.flush(10)
"""
TRAINER = f"""
import logging
from trainer_runner import errortracking
from trainer_runner.logs import bound
from trainer_runner.settings import TrainerSettings
assert errortracking.init(TrainerSettings(), "trainer-job", tags={{"job_id": "42", "attempt": 2}})
with bound(request_id="req-abc123"):
    callback_secret = "{PLANTED}"
    try:
        raise ValueError("s3://u:{PLANTED}@host/x refused")
    except ValueError as exc:
        import sentry_sdk
        sentry_sdk.capture_exception(exc)
import sentry_sdk
sentry_sdk.flush(10)
"""


class Sink(BaseHTTPRequestHandler):
    received: list[bytes] = []

    def do_POST(self) -> None:  # noqa: N802 - the http.server hook's name
        body = self.rfile.read(int(self.headers["Content-Length"]))
        encoding = self.headers.get("Content-Encoding", "")
        if encoding == "gzip":
            body = gzip.decompress(body)
        elif encoding == "deflate":
            body = zlib.decompress(body)
        elif encoding == "br":
            import brotli  # type: ignore[import-not-found,unused-ignore]

            body = brotli.decompress(body)
        Sink.received.append(body)
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *_: Any) -> None:
        pass


@pytest.fixture
def sink() -> Iterator[str]:
    Sink.received = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Sink)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://public@127.0.0.1:{server.server_address[1]}/1"
    finally:
        server.shutdown()
        server.server_close()


def _events() -> list[dict[str, Any]]:
    """The `event` items of every envelope received (header line, then item header/payload pairs)."""
    events = []
    for envelope in Sink.received:
        lines = envelope.split(b"\n")
        for header, payload in zip(lines[1::2], lines[2::2], strict=False):
            if json.loads(header).get("type") == "event":
                events.append(json.loads(payload))
    return events


def _run(code: str, env: dict[str, str]) -> None:
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("side", ["backend", "trainer"])
def test_errors_reach_sentry_tagged_and_without_secrets(side: str, sink: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VTP_", "TRAINER_"))}
    env["VTP_SENTRY_DSN" if side == "backend" else "TRAINER_SENTRY_DSN"] = sink
    _run(BACKEND if side == "backend" else TRAINER, env)

    assert Sink.received, "no envelope reached the sink"
    raw = b"".join(Sink.received)
    assert PLANTED.encode() not in raw, "a planted secret left the process"
    (event,) = _events()
    tags = event["tags"]
    assert tags["request_id"] == "req-abc123"
    assert tags["job_id"] == "42" and tags["attempt"] == "2"
    if side == "backend":
        assert tags["user_id"] == "7" and tags["project_id"] == "3" and tags["process"] == "worker"
        assert event["exception"]["values"][-1]["type"] == "RuntimeError"
    else:
        assert tags["process"] == "trainer-job"
        assert event["exception"]["values"][-1]["type"] == "ValueError"
    # The scrubber left a mark where the secret was: the event still says what went wrong.
    assert "[Filtered]" in raw.decode()
