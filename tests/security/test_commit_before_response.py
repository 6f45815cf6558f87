"""A write is committed before its response leaves the server (read-your-writes for API clients).

Driven at the ASGI level: the moment the app sends `http.response.start`, a separate database
session must already see the row. Before the fix, FastAPI committed the request's session after
sending the response, and a client's very next request could miss what it had just created.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import select

from services.infra.db import session_scope
from tests.security.conftest import Cast

pytestmark = pytest.mark.security


def _visible(name: str) -> bool:
    from services.domain.models import Project

    with session_scope() as session:
        return session.exec(select(Project).where(Project.name == name)).first() is not None


async def _post_and_look(
    app: Any, path: str, payload: dict[str, Any], token: str, name: str
) -> dict[str, Any]:
    body = json.dumps(payload).encode()
    seen: dict[str, Any] = {}
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"testserver"),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"authorization", f"Bearer {token}".encode()),
        ],
        "client": ("127.0.0.1", 5000),
        "server": ("testserver", 80),
    }
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            await asyncio.sleep(3600)
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            seen["status"] = message["status"]
            seen["visible_at_start"] = await asyncio.to_thread(_visible, name)

    await app(scope, receive, send)
    return seen


def test_created_project_is_committed_before_the_response_starts(client: TestClient, cast: Cast) -> None:
    from app.api.main import api

    name = f"ryw-{uuid.uuid4().hex[:8]}"
    token = cast.personal_tokens["owner"]
    # A private loop in its own thread: a session-wide Playwright browser may own this thread's loop.
    with ThreadPoolExecutor(1) as pool:
        result = pool.submit(
            asyncio.run, _post_and_look(api, "/api/v1/projects", {"name": name}, token, name)
        ).result(60)
    assert result["status"] == 201
    assert result["visible_at_start"], "the response started before the new project was committed"
