"""A counting HTTP proxy in front of the real trainer: how often the backend asks it what."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "host"}


@dataclass
class Seen:
    """Every request that went through, as (monotonic time, method, path)."""

    requests: list[tuple[float, str, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    # Cleared: every `POST /jobs` (a hand-over) waits here until it is set again, which holds a
    # job in `dispatching` for as long as a test needs.
    hand_overs: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.hand_overs.set()

    def count(self, method: str, path: str, since: float = 0.0, until: float = float("inf")) -> int:
        with self.lock:
            return sum(1 for t, m, p in self.requests if m == method and p == path and since <= t < until)


@contextmanager
def counting_proxy(port: int, upstream: str) -> Iterator[Seen]:
    """Forward 127.0.0.1:`port` to `upstream`, recording each request; a 502 while it is down."""
    seen = Seen()
    client = httpx.Client(base_url=upstream, timeout=600)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *_args: object) -> None:  # quiet
            return

        def _forward(self) -> None:
            with seen.lock:
                seen.requests.append((time.monotonic(), self.command, self.path.split("?", 1)[0]))
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else None
            if self.command == "POST" and self.path.split("?", 1)[0] == "/jobs":
                seen.hand_overs.wait(timeout=120)
            headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
            try:
                answer = client.request(self.command, self.path, content=body, headers=headers)
            except httpx.HTTPError:
                self.send_response(502)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(answer.status_code)
            for key, value in answer.headers.items():
                if key.lower() not in HOP_BY_HOP and key.lower() != "content-encoding":
                    self.send_header(key, value)
            self.send_header("Content-Length", str(len(answer.content)))
            self.end_headers()
            self.wfile.write(answer.content)

        do_GET = do_POST = do_PUT = do_DELETE = _forward

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield seen
    finally:
        server.shutdown()
        server.server_close()
        client.close()
