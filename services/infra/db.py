"""Engine and sessions. SQLite by default; `VTP_DATABASE_URL` switches to PostgreSQL unchanged.

Sized and watched for load (see `app.api.overload`, which admits at most as many API requests at
once as this pool has connections):

- a bounded wait for a connection (`db_pool_timeout_s`, about a second): past it SQLAlchemy raises
  its pool `TimeoutError`, which the API answers 503 + Retry-After instead of queueing for 30 s;
- the pool's checked-out connections are a Prometheus gauge (`vtp_db_pool_checked_out`), so the
  pool's use over time shows on /metrics;
- statements slower than `slow_query_ms` are logged with their SQL and counted;
- an API request that queued past its deadline is shed before it takes a connection.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from typing import Any

import orjson
from prometheus_client import Counter
from sqlalchemy import Engine, event
from sqlalchemy.exc import DisconnectionError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlmodel import Session, create_engine

from services.errors import Overloaded
from services.infra import deadline
from services.infra.settings import get_settings

log = logging.getLogger(__name__)

SLOW_QUERIES = Counter("vtp_db_slow_queries_total", "Statements slower than VTP_SLOW_QUERY_MS.")

# A pooled PostgreSQL connection idle longer than this is pinged before use (see _ping_when_idle).
PING_AFTER_IDLE_S = 10.0


def _normalise(url: str) -> str:
    # psycopg 3 is the driver we ship; plain postgresql:// would ask for psycopg2.
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def _watch_slow_queries(engine: Engine, threshold_ms: float) -> None:
    """Log every statement slower than the threshold with its SQL (two clock reads per statement)."""

    @event.listens_for(engine, "before_cursor_execute")
    def _start(conn: Any, _cursor: Any, _statement: str, _params: Any, _context: Any, _many: bool) -> None:
        conn.info.setdefault("vtp_query_started", []).append(time.perf_counter())

    @event.listens_for(engine, "after_cursor_execute")
    def _end(conn: Any, _cursor: Any, statement: str, params: Any, _context: Any, _many: bool) -> None:
        elapsed_ms = (time.perf_counter() - conn.info["vtp_query_started"].pop()) * 1000
        if elapsed_ms > threshold_ms:
            SLOW_QUERIES.inc()
            sql = " ".join(statement.split())
            log.warning("slow query (%.0f ms): %s | params %.200r", elapsed_ms, sql, params)

    @event.listens_for(engine, "handle_error")
    def _failed(context: Any) -> None:
        started = context.connection.info.get("vtp_query_started") if context.connection is not None else None
        if started:
            started.pop()


def _ping_when_idle(engine: Engine) -> None:
    """Ping a pooled connection before use only when it sat idle for `PING_AFTER_IDLE_S` or more.

    `pool_pre_ping` pings on every checkout: one more round trip to PostgreSQL per session, and
    0.1-0.2 ms of the web process's CPU measured in-process, on requests that cost it 3-7 ms in all
    (bench/route_cost.py --database postgres). A connection checked in moments ago is alive; one
    that waited in the pool through a database restart or a firewall's idle timeout is not, and
    that is the one the ping is for. A failed ping makes the pool discard it (and every
    connection opened before it) and connect again, as `pool_pre_ping` does; a connection that
    dies between a recent use and the next is found by its statement's error, which invalidates
    the pool the same way.
    """

    @event.listens_for(engine, "checkin")
    def _checked_in(_dbapi_connection: Any, record: Any) -> None:
        record.info["vtp_idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checked_out(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        idle_since = record.info.pop("vtp_idle_since", None)
        if idle_since is None or time.monotonic() - idle_since < PING_AFTER_IDLE_S:
            return  # new, or back in the pool moments ago
        try:
            alive = engine.dialect.do_ping(dbapi_connection)
        except Exception as exc:
            raise DisconnectionError(f"pooled connection lost while idle: {exc}") from exc
        if not alive:
            raise DisconnectionError("pooled connection lost while idle")


def database_url() -> str:
    """The platform database's SQLAlchemy URL (with the driver we ship), for tools that open their
    own engine on it (Optuna's storage of sweep studies)."""
    return _normalise(get_settings().db_url)


def _json_loads(text: str | bytes) -> Any:
    """JSON columns decoded by orjson: a jobs list decodes nine JSON columns per job, and the
    standard library's decoder took 11 % of the web process's time holding the GIL under load
    (bench/load_test.py). A value orjson refuses (NaN or Infinity, which `json.dumps` writes for
    a diverged metric) goes to the standard library, which reads them back as floats, as before."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)


@lru_cache
def get_engine(url: str | None = None) -> Engine:
    settings = get_settings()
    url = _normalise(url or settings.db_url)
    pool: dict[str, Any] = {
        "pool_size": settings.db_pool_size,
        "max_overflow": settings.db_max_overflow,
        "pool_timeout": settings.db_pool_timeout_s,
    }
    if url.startswith("sqlite"):
        if ":memory:" in url or url.rstrip("/") == "sqlite:":
            pool = {}  # one shared in-memory connection (SingletonThreadPool/StaticPool): no sizing
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 30},
            json_deserializer=_json_loads,
            **pool,
        )

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
            cursor = dbapi_connection.cursor()
            # WAL lets the web app, the worker and the API read while another process writes.
            cursor.execute("PRAGMA journal_mode=WAL")
            # In WAL mode NORMAL is still crash-safe (a power loss may drop the last commits, never
            # corrupt); FULL's fsync per commit made each callback's commit wait on the disk.
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            # How long a write waits for another process's write lock; past it the API answers 503.
            cursor.execute(f"PRAGMA busy_timeout={int(settings.sqlite_busy_timeout_ms)}")
            cursor.close()

    else:
        engine = create_engine(url, json_deserializer=_json_loads, **pool)
        _ping_when_idle(engine)
    _watch_slow_queries(engine, settings.slow_query_ms)
    return engine


def pool_checked_out() -> float:
    """Connections of this process's default engine in use now (services.infra.metrics)."""
    pool = get_engine().pool
    return float(pool.checkedout()) if hasattr(pool, "checkedout") else 0.0


def is_lock_timeout(exc: OperationalError) -> bool:
    """SQLite's answer when busy_timeout ran out waiting for another writer."""
    return "database is locked" in str(exc.orig)


@contextmanager
def session_scope() -> Iterator[Session]:
    """A session that commits on success and rolls back on any error.

    No connection within the pool timeout, or SQLite's write lock not within its busy timeout, is
    overload, not a bug: it is raised as `Overloaded` (503 + Retry-After, "busy" in the UI). So is
    an API request whose deadline to start has passed while it queued (`services.infra.deadline`):
    it is shed here, before it takes a connection, rather than served late.
    """
    deadline.check()
    with Session(get_engine(), expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except PoolTimeout as exc:
            session.rollback()
            raise Overloaded(cause="pool_timeout") from exc
        except OperationalError as exc:
            session.rollback()
            if is_lock_timeout(exc):
                raise Overloaded(cause="db_locked") from exc
            raise
        except Exception:
            session.rollback()
            raise
