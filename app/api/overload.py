"""Overload protection and per-route timing for the REST API: hold what the process can serve,
shed the rest at once with 503 + Retry-After.

Under more load than one web process can serve, queueing everything turns into minute-long waits
and, once a connection or worker wait times out, into 500s. Instead every `/api/` request takes a
slot in a lane before it runs; a request that cannot get one within `api_queue_wait_s` (about a
second) is answered 503 with `Retry-After`, which well-behaved clients (the trainer's callback
sender, the web UI's "busy, retrying") take as "try again shortly".

- Two lanes: trainer callbacks have their own, so browsing users never shed the ingest of
  training progress (and the reverse).
- The lanes bound how many requests run at once, which also bounds the threads and database
  connections they use: `services.infra.db` sizes the pool and this module sizes the thread pool
  from the same settings, so an admitted request never waits for either.
- Should a connection wait still time out (another process holds the database, a lane is sized
  above the pool), `session_scope` raises `Overloaded` (a `DomainError`: 503 + Retry-After), and
  `overloaded` does the same for SQLAlchemy's pool `TimeoutError` and SQLite's "database is
  locked" met outside a session scope.

Every request's duration, the wait for a slot included, is observed per route template by the
outer `app.api.telemetry.Telemetry` (`vtp_http_request_duration_seconds`); requests slower than
a second are logged here with their route: cheap enough to leave on.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import anyio
import anyio.to_thread
from prometheus_client import Counter, Gauge
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from app.api.telemetry import ROUTE_OVERRIDE, template
from services.errors import BUSY
from services.infra.db import is_lock_timeout
from services.infra.settings import get_settings

log = logging.getLogger(__name__)

CALLBACK_PREFIX = "/api/v1/trainer/callbacks/"
# Probes and scrapes must answer even (especially) when the API is saturated.
UNLIMITED = frozenset({"/healthz", "/readyz", "/metrics"})
SLOW_REQUEST_S = 1.0

SHED = Counter(
    "vtp_http_shed_total", "Requests answered 503 because the server was saturated.", ["lane", "cause"]
)
IN_FLIGHT = Gauge("vtp_http_in_flight", "Requests holding a lane slot.", ["lane"])
WAITING = Gauge("vtp_http_waiting", "Requests waiting for a lane slot.", ["lane"])


def retry_after_s() -> int:
    return max(1, round(get_settings().api_retry_after_s))


def busy_response(*, lane: str, cause: str) -> JSONResponse:
    SHED.labels(lane, cause).inc()
    return JSONResponse({"detail": BUSY}, status_code=503, headers={"Retry-After": str(retry_after_s())})


async def overloaded(request: Request, exc: Exception) -> JSONResponse:
    """Exception handler: a connection that could not be had in time is overload, not a bug."""
    if isinstance(exc, OperationalError) and not is_lock_timeout(exc):
        raise exc
    cause = "pool_timeout" if isinstance(exc, PoolTimeout) else "db_locked"
    lane = "callbacks" if request.url.path.startswith(CALLBACK_PREFIX) else "api"
    log.warning("shed %s %s: %s", request.method, request.url.path, cause)
    return busy_response(lane=lane, cause=cause)


@dataclass
class Lane:
    """At most `limit` requests at once; the others wait up to `wait_s` for a slot."""

    name: str
    limit: int
    wait_s: float
    _limiter: anyio.CapacityLimiter | None = field(default=None, repr=False)

    @property
    def limiter(self) -> anyio.CapacityLimiter:
        # Created on first use, inside the server's event loop.
        if self._limiter is None:
            self._limiter = anyio.CapacityLimiter(self.limit)
        return self._limiter

    async def acquire(self) -> bool:
        WAITING.labels(self.name).inc()
        try:
            with anyio.move_on_after(self.wait_s):
                await self.limiter.acquire()
                IN_FLIGHT.labels(self.name).inc()
                return True
            return False
        finally:
            WAITING.labels(self.name).dec()

    def release(self) -> None:
        IN_FLIGHT.labels(self.name).dec()
        self.limiter.release()


class LoadShedding:
    """Pure ASGI middleware: a lane slot per `/api/` request, or 503 + Retry-After after the wait."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        settings = get_settings()
        wait = settings.api_queue_wait_s
        self.api = Lane("api", settings.api_max_concurrency, wait)
        self.callbacks = Lane("callbacks", settings.callback_max_concurrency, wait)
        self._threads_sized = False

    def _size_threads(self) -> None:
        """Sync routes and dependencies run in anyio's thread pool (40 threads by default): give it
        one thread per lane slot plus room for the Reflex pages, so a slot never waits for a thread."""
        if not self._threads_sized:
            threads = self.api.limit + self.callbacks.limit + get_settings().web_spare_threads
            anyio.to_thread.current_default_thread_limiter().total_tokens = threads
            self._threads_sized = True

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "")
        if scope["type"] != "http" or not path.startswith("/api/") or path in UNLIMITED:
            await self.app(scope, receive, send)
            return
        self._size_threads()
        lane = self.callbacks if path.startswith(CALLBACK_PREFIX) else self.api
        method: str = scope.get("method", "GET")
        began = time.perf_counter()
        if not await lane.acquire():
            scope[ROUTE_OVERRIDE] = "shed"  # the latency histogram's route label
            await busy_response(lane=lane.name, cause="queue_wait")(scope, receive, send)
            return
        try:
            await self.app(scope, receive, send)
        finally:
            lane.release()
            elapsed = time.perf_counter() - began
            if elapsed > SLOW_REQUEST_S:
                route = template(scope)
                log.warning("slow request: %s %s took %.0f ms", method, route, elapsed * 1000)
