"""The compiled frontend's files answered from memory once read.

A page request (`/`, `/jobs/12`) is a third of what 200 browsing users send (bench/locustfile.py).
Reflex serves the compiled frontend with Starlette's StaticFiles, which stats, opens and reads the
file on a worker thread for every request: those thread hand-offs and Reflex's own middleware made
a page's HTML cost the web process about as much CPU as a jobs-list query (bench/route_cost.py).
The build does not change while the process runs (`reflex run --env prod` and
services.runtime.web build or restore it before the server starts; `--env preview`, which rebuilds
on every change, would keep showing the first build until a restart), so the first answer for a
file is kept and sent again as it was: same status, headers
(ETag, Last-Modified, Content-Encoding) and bytes. Our own middleware (request id, security headers,
load shedding, telemetry) still runs around every request.

Only plain GETs of files are kept: a request with a Range, a cross-origin request (CORS headers
depend on the Origin) or a conditional one goes to Reflex as before, except a conditional request
for a kept file whose ETag matches, which is answered 304 here as StaticFiles would. Answers
without an ETag (Reflex's /ping, /_health) are never kept.
"""

from __future__ import annotations

from dataclasses import dataclass

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.api.telemetry import ROUTE_OVERRIDE

ROUTE = "frontend"  # the latency histogram's route label for the compiled frontend's files
MAX_BODY_BYTES = 4 * 1024 * 1024  # the app's largest chunk is about 1 MB, gzipped far less
MAX_ENTRIES = 1024  # distinct (path, query, encoding) answers kept; then it starts over
# One body per file version (its ETag), however many paths or query strings answer with it: the
# pages' shared HTML, or one chunk asked for with 1,000 made-up query strings, is held once.
_PASS_THROUGH = (b"range", b"origin", b"if-modified-since")
_NOT_MODIFIED_HEADERS = (b"etag", b"last-modified", b"cache-control", b"vary", b"content-location")


@dataclass(frozen=True)
class _Answer:
    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes
    etag: bytes


class FrontendCache:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._kept: dict[tuple[str, bytes, bytes], _Answer] = {}
        self._bodies: dict[bytes, bytes] = {}  # ETag -> body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "GET":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        if any(name in headers for name in _PASS_THROUGH):
            await self.app(scope, receive, send)
            return
        key = (scope["path"], scope.get("query_string", b""), headers.get(b"accept-encoding", b""))
        kept = self._kept.get(key)
        if kept is not None:
            scope[ROUTE_OVERRIDE] = ROUTE
            await self._send(kept, headers.get(b"if-none-match"), send)
            return
        if b"if-none-match" in headers:
            await self.app(scope, receive, send)
            return
        await self._serve_and_keep(key, scope, receive, send)

    async def _send(self, kept: _Answer, if_none_match: bytes | None, send: Send) -> None:
        if if_none_match is not None and kept.etag in {tag.strip() for tag in if_none_match.split(b",")}:
            headers = [(name, value) for name, value in kept.headers if name in _NOT_MODIFIED_HEADERS]
            await send({"type": "http.response.start", "status": 304, "headers": headers})
            await send({"type": "http.response.body", "body": b""})
            return
        await send({"type": "http.response.start", "status": kept.status, "headers": kept.headers})
        await send({"type": "http.response.body", "body": kept.body})

    async def _serve_and_keep(
        self, key: tuple[str, bytes, bytes], scope: Scope, receive: Receive, send: Send
    ) -> None:
        status = 0
        kept_headers: list[tuple[bytes, bytes]] = []
        chunks: list[bytes] = []
        size = 0
        keep = True

        async def capture(message: Message) -> None:
            nonlocal status, kept_headers, size, keep
            if message["type"] == "http.response.start":
                # Copied now: the middleware outside adds its own headers to this message.
                status = message["status"]
                kept_headers = [(bytes(k).lower(), bytes(v)) for k, v in message.get("headers", [])]
                keep = status == 200 and any(name == b"etag" for name, _ in kept_headers)
            elif message["type"] == "http.response.body" and keep:
                size += len(message.get("body", b""))
                keep = size <= MAX_BODY_BYTES
                chunks.append(message.get("body", b""))
                if keep and not message.get("more_body", False):
                    self._keep(key, status, kept_headers, b"".join(chunks))
            await send(message)

        await self.app(scope, receive, capture)
        if status and keep:
            scope[ROUTE_OVERRIDE] = ROUTE

    def _keep(
        self, key: tuple[str, bytes, bytes], status: int, headers: list[tuple[bytes, bytes]], body: bytes
    ) -> None:
        etag = next(value for name, value in headers if name == b"etag")
        if len(self._kept) >= MAX_ENTRIES:
            self._kept.clear()
            self._bodies.clear()
        self._kept[key] = _Answer(status, headers, self._bodies.setdefault(etag, body), etag)

    def held_bytes(self) -> int:
        """The bodies kept, in bytes (each file version once)."""
        return sum(len(body) for body in self._bodies.values())
