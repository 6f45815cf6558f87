"""What every REST request leaves for the operator: a request id, a log line, a latency sample.

One pure ASGI middleware (outermost, so a refused or shed request counts too):

- the request id: the caller's `X-Request-ID` when well-formed (the trainer's callbacks send back
  the id of the request that created their job), else a new one; answered in the same header and
  put on every log line of the request (services.infra.logs);
- the latency histogram by route template (`/api/v1/projects/{project_id}`), never the raw path:
  one series per route, however many ids there are;
- one log line per request (but scrapes and health checks) with the ids the route learnt.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.infra import logs, metrics

log = logging.getLogger("vtp.http")
QUIET_PATHS = ("/metrics", "/healthz", "/readyz")
ROUTE_OVERRIDE = "vtp.route"  # an inner middleware that answers without routing names the route


class Telemetry:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        offered = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"x-request-id"), None)
        request_id = logs.request_id(offered)
        status = 500

        async def answer(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), (b"x-request-id", request_id.encode())]
            await send(message)

        began = time.perf_counter()
        with logs.bound(request_id=request_id):
            try:
                await self.app(scope, receive, answer)
            finally:
                seconds = time.perf_counter() - began
                route = template(scope)
                metrics.observe_http(route, scope["method"], status, seconds)
                if not scope.get("path", "").endswith(QUIET_PATHS):
                    log.info(
                        "%s %s %s",
                        scope["method"],
                        route,
                        status,
                        extra={"status": status, "ms": round(seconds * 1000, 1)},
                    )


def template(scope: dict[str, Any]) -> str:
    """The matched route's template with the routers' prefixes: FastAPI's `scope["route"]` holds
    the innermost route's own path (`/projects/{project_id}`), so the prefix is the part of the
    request path in front of that many segments."""
    if ROUTE_OVERRIDE in scope:
        return str(scope[ROUTE_OVERRIDE])
    route = getattr(scope.get("route"), "path", None)
    if not route:
        return "unmatched"
    segments = scope.get("path", "").rstrip("/").split("/")
    depth = len(route.rstrip("/").split("/")) - 1
    return "/".join(segments[: len(segments) - depth]) + route if depth else route
