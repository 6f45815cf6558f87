"""The compiled frontend's files are answered from memory after the first read, with the headers
and bytes Reflex's static file server gave, and every request still gets its own request id."""

from __future__ import annotations

import gzip
from pathlib import Path

from reflex.utils.precompressed_staticfiles import PrecompressedStaticFiles
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route
from starlette.testclient import TestClient
from starlette.types import Receive, Scope, Send

from app.api.frontend_cache import FrontendCache
from app.api.telemetry import Telemetry


def _client(build: Path, served: list[str], cache: list[FrontendCache] | None = None) -> TestClient:
    """Reflex's static files (with gzip sidecars) and a dynamic route, as the web process mounts
    them, inside the cache, inside our request-id middleware; `served` lists what reached Reflex."""
    (build / "index.html").write_text("<html>home v1</html>")
    (build / "app.js").write_text("console.log('v1')" * 200)
    (build / "app.js.gz").write_bytes(gzip.compress((build / "app.js").read_bytes()))
    inner = Starlette(
        routes=[
            Route("/ping", lambda _request: JSONResponse({"pong": len(served)})),
            Mount("/", PrecompressedStaticFiles(directory=build, html=True, encodings=["gzip"])),
        ]
    )

    async def reflex_app(scope: Scope, receive: Receive, send: Send) -> None:
        served.append(scope["path"])
        await inner(scope, receive, send)

    kept = FrontendCache(reflex_app)
    if cache is not None:
        cache.append(kept)
    return TestClient(Telemetry(kept))


def test_a_page_is_read_once_and_then_answered_from_memory(tmp_path: Path) -> None:
    served: list[str] = []
    client = _client(tmp_path, served)
    first = client.get("/")
    (tmp_path / "index.html").write_text("<html>changed on disk</html>")
    second = client.get("/")
    assert first.status_code == second.status_code == 200
    assert second.text == first.text == "<html>home v1</html>"
    assert served == ["/"], "the second request never reached the static file server"
    for name in ("etag", "last-modified", "content-type", "content-length"):
        assert second.headers[name] == first.headers[name]
    assert first.headers["x-request-id"] != second.headers["x-request-id"]
    assert second.headers.get_list("x-request-id") == [second.headers["x-request-id"]], "one id, not two"


def test_each_encoding_is_kept_apart(tmp_path: Path) -> None:
    served: list[str] = []
    client = _client(tmp_path, served)
    for _ in range(2):
        zipped = client.get("/app.js", headers={"Accept-Encoding": "gzip"})
        plain = client.get("/app.js", headers={"Accept-Encoding": "identity"})
        assert zipped.headers["content-encoding"] == "gzip"
        assert "content-encoding" not in plain.headers
        assert zipped.text == plain.text == "console.log('v1')" * 200
    assert served == ["/app.js", "/app.js"]


def test_revalidation_ranges_and_dynamic_answers(tmp_path: Path) -> None:
    served: list[str] = []
    client = _client(tmp_path, served)
    etag = client.get("/").headers["etag"]
    not_modified = client.get("/", headers={"If-None-Match": etag})
    assert not_modified.status_code == 304 and not_modified.content == b""
    assert not_modified.headers["etag"] == etag
    assert client.get("/", headers={"If-None-Match": '"other"'}).text == "<html>home v1</html>"
    assert served == ["/"]
    partial = client.get("/", headers={"Range": "bytes=0-5"})
    assert partial.status_code == 206 and partial.text == "<html>"
    pongs = [client.get("/ping").json()["pong"] for _ in range(2)]
    assert pongs[1] == pongs[0] + 1, "an answer without an ETag is never kept"
    assert client.get("/missing.js").status_code == 404
    assert client.get("/missing.js").status_code == 404
    assert served.count("/missing.js") == 2


def test_a_file_asked_for_under_many_query_strings_is_held_once(tmp_path: Path) -> None:
    """Made-up query strings cannot make the process hold one large file many times over."""
    served: list[str] = []
    cache: list[FrontendCache] = []
    client = _client(tmp_path, served, cache)
    size = (tmp_path / "app.js").stat().st_size
    for i in range(50):
        answer = client.get(f"/app.js?v={i}", headers={"Accept-Encoding": "identity"})
        assert answer.status_code == 200 and len(answer.content) == size
    assert cache[0].held_bytes() == size
