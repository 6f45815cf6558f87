"""PostgreSQL connections that died while idle in the pool are replaced before use, without the
per-checkout ping that cost every request a round trip (services.infra.db._ping_when_idle)."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import OperationalError

from services.infra import db
from tests.utils import servers

pytestmark = [pytest.mark.reliability, pytest.mark.postgres]


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    with servers.postgres() as url:
        yield url


def _backend_pid(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(connection.execute(text("SELECT pg_backend_pid()")).scalar_one())


def _terminate(url: str, pid: int) -> None:
    """What a database restart or a firewall's idle timeout does to a pooled connection."""
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))


def test_a_connection_killed_while_idle_is_replaced_before_the_request_uses_it(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = db.get_engine(postgres_url)
    first = _backend_pid(engine)
    _terminate(postgres_url, first)
    monkeypatch.setattr(db, "PING_AFTER_IDLE_S", 0.0)  # every pooled connection counts as idle
    second = _backend_pid(engine)  # no error: the ping found it dead, the pool connected again
    assert second != first


def test_a_connection_back_in_the_pool_moments_ago_is_used_without_a_ping(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = db.get_engine(postgres_url)
    pid = _backend_pid(engine)
    pings: list[int] = []
    ping = engine.dialect.do_ping
    monkeypatch.setattr(engine.dialect, "do_ping", lambda conn: pings.append(1) or ping(conn))
    assert [_backend_pid(engine) for _ in range(5)] == [pid] * 5
    assert pings == [], "a request on a busy pool costs no extra round trip"
    monkeypatch.setattr(db, "PING_AFTER_IDLE_S", 0.0)
    assert _backend_pid(engine) == pid
    assert pings == [1]
    # Killed right after use, the next statement on it fails instead of being pinged first: the
    # price of skipping the ping, paid only when a connection dies within seconds of its last use.
    monkeypatch.setattr(db, "PING_AFTER_IDLE_S", 3600.0)
    _terminate(postgres_url, pid)
    with pytest.raises(OperationalError), engine.connect() as connection:
        connection.execute(text("SELECT 1"))
    assert _backend_pid(engine) != pid, "the failed statement made the pool connect again"
