"""Overload protection and per-route timing for the REST API: hold what the process can serve,
shed the rest at once with 503 + Retry-After.

Under more load than one web process can serve, queueing everything turns into minute-long waits
and, once a connection or worker wait times out, into 500s. Instead every `/api/` request gets a
deadline when it arrives (`api_queue_wait_s`, about a second, `services.infra.deadline`) by which
it must have started its work, and takes a slot in a lane before it runs. A request that cannot
get a slot before its deadline, or that is still waiting for a worker thread or a database
connection when it passes while the lane is saturated, is answered 503 with `Retry-After`, which
well-behaved clients (the trainer's callback sender, the web UI's "busy, retrying") take as "try
again shortly". One budget for all the waits: bounded one by one they added up, and under 1,000
users requests admitted at the end of their slot wait were served long after they arrived.

- Three lanes: trainer callbacks have their own, so browsing users never shed the ingest of
  training progress (and the reverse); so do uploads, which hold a slot for as long as their file
  takes to arrive: a few people uploading datasets must not take every browsing slot.
- The browsing lane is narrow (`api_max_concurrency`, 4). One web process runs Python on one core
  at a time, and every SQLite step hands the GIL to another thread: with 16 requests at once,
  200 users on 2 cores (bench/load_test.py) cost 29,000 context switches a second and a quarter
  of the process's CPU in the kernel, and the median request took 270 ms. With 4: 1,400 a second,
  77 ms, and 10 % more requests served.
- A lane's queue holds what it can start before the deadline at the time a request is measured
  to hold a slot; past that a newcomer is shed on arrival, not after a full wait. Under congestion
  the newest waiter is served first and the oldest are shed (adaptive LIFO, see `Lane`).
- The lanes bound how many requests run at once, which also bounds the threads and database
  connections they use: `services.infra.db` sizes the pool and this module sizes the thread pool
  from the same settings, so an admitted request rarely waits for either.
- Should a connection wait still time out (another process holds the database, a lane is sized
  above the pool), `session_scope` raises `Overloaded` (a `DomainError`: 503 + Retry-After), and
  `overloaded` does the same for SQLAlchemy's pool `TimeoutError` and SQLite's "database is
  locked" met outside a session scope.

Every request's duration, the wait for a slot included, is observed per route template by the
outer `app.api.telemetry.Telemetry` (`vtp_http_request_duration_seconds`); requests slower than
a second are logged here with their route: cheap enough to leave on.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque

import anyio.to_thread
from prometheus_client import Counter, Gauge
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from app.api.telemetry import ROUTE_OVERRIDE, template
from services.errors import BUSY
from services.infra import deadline
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


def lane_of(path: str, content_type: str = "") -> str:
    """`callbacks` (trainer progress), `uploads` (a file in the body: datasets, weights, image zips,
    which hold their slot while the file streams in) or `api` (everything else)."""
    if path.startswith(CALLBACK_PREFIX):
        return "callbacks"
    return "uploads" if content_type.startswith("multipart/form-data") else "api"


def _content_type(scope: Scope) -> str:
    for name, value in scope.get("headers", ()):
        if name == b"content-type":
            return value.decode("latin-1").lower()
    return ""


def count_shed(path: str, *, cause: str, content_type: str = "") -> None:
    """A request refused as `Overloaded` past its slot (deadline, pool, lock): counted as shed."""
    SHED.labels(lane_of(path, content_type.lower()), cause).inc()


async def overloaded(request: Request, exc: Exception) -> JSONResponse:
    """Exception handler: a connection that could not be had in time is overload, not a bug."""
    if isinstance(exc, OperationalError) and not is_lock_timeout(exc):
        raise exc
    cause = "pool_timeout" if isinstance(exc, PoolTimeout) else "db_locked"
    log.warning("shed %s %s: %s", request.method, request.url.path, cause)
    lane = lane_of(request.url.path, request.headers.get("content-type", "").lower())
    return busy_response(lane=lane, cause=cause)


class Lane:
    """At most `limit` requests at once; the others queue until their deadline, or are shed.

    The queue is bounded by what the lane can start within the wait (`room`: its slots times the
    wait over the measured time a request holds a slot), so a request that could not begin before
    its deadline is answered 503 on arrival instead of after a full wait. While the lane keeps up
    the queue is served first come, first served; once the oldest waiter has waited a quarter of
    the budget (congestion: the queue is not draining) the newest is served first and the oldest,
    who would time out anyway, are shed when the queue is full (adaptive LIFO). Under overload the
    requests that are served are then the ones that waited least, rather than every one of them
    waiting nearly the whole budget.
    """

    # Until measured: a browsing request holds a slot for a few ms of CPU, more under contention.
    INITIAL_SERVICE_S = 0.05
    EWMA_WEIGHT = 0.05

    def __init__(self, name: str, limit: int, wait_s: float) -> None:
        self.name = name
        self.limit = limit
        self.wait_s = wait_s
        self.busy = 0
        self.service_s = self.INITIAL_SERVICE_S
        self._waiters: deque[tuple[float, asyncio.Future[bool]]] = deque()

    def saturated(self) -> bool:
        """Every slot taken: a request arriving now would wait (read from worker threads too)."""
        return self.busy >= self.limit

    def room(self) -> int:
        """Waiters the lane can start within the wait, at the measured time per request."""
        return max(1, int(self.limit * self.wait_s / max(self.service_s, 1e-3)))

    async def acquire(self, deadline_at: float) -> bool:
        """True with a slot held; False (shed) when none could be had before `deadline_at`."""
        if self.busy < self.limit and not self._waiters:
            self.busy += 1
            IN_FLIGHT.labels(self.name).inc()
            return True
        now = time.monotonic()
        if deadline_at <= now:
            return False
        if len(self._waiters) >= self.room():
            if not self._congested(now):
                return False  # the queue ahead of it already fills the wait
            _arrived, oldest = self._waiters.popleft()
            oldest.set_result(False)  # it would time out anyway; the newcomer takes its place
        handed: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        entry = (now, handed)
        self._waiters.append(entry)
        WAITING.labels(self.name).inc()
        try:
            return await asyncio.wait_for(asyncio.shield(handed), deadline_at - now)
        except TimeoutError:
            if handed.done() and not handed.cancelled():
                return handed.result()  # handed a slot (or shed) as the wait ran out
            handed.cancel()  # `release` skips it
            return False
        except BaseException:  # the client went away, or the server stops
            if handed.done() and not handed.cancelled() and handed.result():
                self._pass_on()
            handed.cancel()
            raise
        finally:
            WAITING.labels(self.name).dec()
            if entry in self._waiters:
                self._waiters.remove(entry)

    def release(self, *, began: float) -> None:
        """Hand the slot to the next waiter (or free it), learning how long it was held."""
        held = time.monotonic() - began
        self.service_s += self.EWMA_WEIGHT * (held - self.service_s)
        self._pass_on()

    def _pass_on(self) -> None:
        while self._waiters:
            _arrived, handed = self._next()
            if not handed.done():
                handed.set_result(True)  # the slot passes on: `busy` is unchanged
                return
        self.busy -= 1
        IN_FLIGHT.labels(self.name).dec()

    def _congested(self, now: float) -> bool:
        return bool(self._waiters) and now - self._waiters[0][0] > self.wait_s / 4

    def _next(self) -> tuple[float, asyncio.Future[bool]]:
        return self._waiters.pop() if self._congested(time.monotonic()) else self._waiters.popleft()


class LoadShedding:
    """Pure ASGI middleware: a deadline and a lane slot per `/api/` request, or 503 + Retry-After."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        settings = get_settings()
        wait = settings.api_queue_wait_s
        self.api = Lane("api", settings.api_max_concurrency, wait)
        self.callbacks = Lane("callbacks", settings.callback_max_concurrency, wait)
        self.uploads = Lane("uploads", settings.upload_max_concurrency, wait)
        self._lanes = {"api": self.api, "callbacks": self.callbacks, "uploads": self.uploads}
        self._threads_sized = False

    def _size_threads(self) -> None:
        """Sync routes and dependencies run in anyio's thread pool (40 threads by default): give it
        one thread per lane slot plus room for the Reflex pages, so a slot never waits for a thread."""
        if not self._threads_sized:
            lanes = self.api.limit + self.callbacks.limit + self.uploads.limit
            threads = lanes + get_settings().web_spare_threads
            anyio.to_thread.current_default_thread_limiter().total_tokens = threads
            self._threads_sized = True

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "")
        if scope["type"] != "http" or not path.startswith("/api/") or path in UNLIMITED:
            await self.app(scope, receive, send)
            return
        self._size_threads()
        lane = self._lanes[lane_of(path, _content_type(scope))]
        method: str = scope.get("method", "GET")
        arrived = time.monotonic()
        # One deadline for every wait of this request: the slot here, then a worker thread and a
        # database connection (`services.infra.db.session_scope` checks it before connecting).
        token = deadline.start(arrived + lane.wait_s, method=method, saturated=lane.saturated)
        try:
            if not await lane.acquire(arrived + lane.wait_s):
                scope[ROUTE_OVERRIDE] = "shed"  # the latency histogram's route label
                await busy_response(lane=lane.name, cause="queue_wait")(scope, receive, send)
                return
            admitted = time.monotonic()
            try:
                await self.app(scope, receive, send)
            finally:
                lane.release(began=admitted)
                elapsed = time.monotonic() - arrived
                if elapsed > SLOW_REQUEST_S:
                    route = template(scope)
                    log.warning("slow request: %s %s took %.0f ms", method, route, elapsed * 1000)
        finally:
            deadline.reset(token)
