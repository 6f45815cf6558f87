"""ASGI middleware of the REST API: body-size limits, security headers, and the audit rows that
only it can write.

One pure-ASGI middleware so it sees every request whatever the route. Actions audit themselves
(services.actions: one semantic row per action, refusals included); this middleware records only
requests that no action served: refused for missing or bad credentials (401), too large (413) or
rate limited (429) before any action ran.
"""

from __future__ import annotations

import re
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.domain import audit
from services.infra.settings import get_settings

# What the middleware alone sees; every other refusal is recorded by the action that refused.
MIDDLEWARE_AUDITED = frozenset({401, 413, 429})
# Dataset and model weight uploads may be large; everything else is small JSON.
UPLOAD_PATH = re.compile(r"^/api/v1/projects/[^/]+/(datasets|models/upload)/?$")
CALLBACK_PREFIX = "/api/v1/trainer/callbacks/"

SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-resource-policy", b"same-origin"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=()"),
]
API_CSP = (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'")


class BodyTooLarge(Exception):
    pass


def body_limit(path: str) -> int:
    if UPLOAD_PATH.match(path):
        return get_settings().max_upload_bytes
    return get_settings().max_request_bytes


async def _send_json(send: Send, status: int, body: bytes) -> None:
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers + SECURITY_HEADERS})
    await send({"type": "http.response.body", "body": body})


class SecurityMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        method: str = scope.get("method", "GET")
        limit = body_limit(path)
        context = audit.AuditContext(source_ip=(scope.get("client") or ("", 0))[0] or "")
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await _send_json(send, 413, b'{"detail":"Request body too large"}')
            _audit_request(scope, method, path, 413, context)
            return

        token = audit.set_context(context)
        state: dict[str, Any] = {"status": 500, "started": False, "received": 0}

        async def limited_receive() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                state["received"] += len(message.get("body", b""))
                if state["received"] > limit:
                    raise BodyTooLarge()
            return message

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                state["status"], state["started"] = message["status"], True
                headers = list(message.get("headers", []))
                present = {k.lower() for k, _ in headers}
                extra = list(SECURITY_HEADERS)
                if path.startswith("/api/"):
                    # JSON only: the Reflex pages served on the same port need their inline
                    # scripts and styles, so this strict policy must not reach them.
                    extra.append(API_CSP)
                if path.startswith("/api/v1/auth/"):
                    extra.append((b"cache-control", b"no-store"))
                headers += [(k, v) for k, v in extra if k not in present]
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, limited_receive, send_with_headers)
        except BodyTooLarge:
            if state["started"]:
                raise
            state["status"] = 413
            await _send_json(send, 413, b'{"detail":"Request body too large"}')
        finally:
            audit.reset_context(token)
            _audit_request(scope, method, path, state["status"], context)


def route_template(path: str, params: dict[str, Any]) -> str:
    """'/api/v1/projects/3' + {project_id: 3} -> '/api/v1/projects/{project_id}' (the audit action)."""
    unused = dict(params)
    segments = []
    for segment in path.split("/"):
        name = next((k for k, v in unused.items() if str(v) == segment), None)
        if name is not None:
            unused.pop(name)
            segment = "{" + name + "}"
        segments.append(segment)
    return "/".join(segments)


def _audit_request(scope: Scope, method: str, path: str, status: int, context: audit.AuditContext) -> None:
    """A row for a request refused before (or outside) any action: 401, 413 and 429 only."""
    if status not in MIDDLEWARE_AUDITED or context.recorded:
        return
    params: dict[str, Any] = scope.get("path_params") or {}
    template = route_template(path, params)
    project_id = params.get("project_id")
    token = audit.set_context(context)
    try:
        audit.record_now(
            actor=None,
            action=f"{method} {template}",
            target=" ".join(f"{k}={v}" for k, v in sorted(params.items())),
            result=audit.DENIED,
            project_id=int(project_id)
            if isinstance(project_id, int | str) and str(project_id).isdigit()
            else None,
            status_code=status,
            channel="rest",
        )
    finally:
        audit.reset_context(token)
