"""Requests signed in with personal API tokens, many at once, each holding its database session.

A token's first use in a minute records "last used". When that write took a second pooled
connection inside the request, requests that each held one connection waited for another: past
the pool's size (5 + 10 overflow) they all waited out the 30 s pool timeout and failed, which is
what a locust run with 200 users showed. Here as many requests as the pool has connections each
take one and line up at exactly that point (a barrier); every one must be signed in, promptly.
"""

from __future__ import annotations

import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import text

from services.infra.db import get_engine, session_scope

pytestmark = [pytest.mark.security, pytest.mark.usefixtures("backend")]


def _tokens(count: int) -> list[str]:
    from services.domain import auth, tokens

    secrets = []
    with session_scope() as session:
        for _ in range(count):
            user = auth.create_user(
                session, username=f"c-{uuid.uuid4().hex[:10]}", password="correct-horse-battery-1"
            )
            secrets.append(tokens.create_personal_token(session, user=user, name="ci", expires_in_days=1)[1])
    return secrets


@pytest.mark.slow  # concurrent sign-ins hash passwords for seconds: `make test` runs it, not test-fast
def test_more_concurrent_token_requests_than_pooled_connections_all_sign_in() -> None:
    from services.domain import tokens

    pool = get_engine().pool
    requests = pool.size() + pool._max_overflow  # type: ignore[attr-defined]  # every connection taken
    secrets = _tokens(requests)
    lined_up = threading.Barrier(requests, timeout=20)

    def request(secret: str) -> tuple[str, float]:
        with session_scope() as session:
            session.execute(text("SELECT 1"))  # the request's own connection, held from here on
            lined_up.wait()
            started = time.monotonic()
            user = tokens.user_for_bearer(session, secret)
            return user.username, time.monotonic() - started

    with ThreadPoolExecutor(requests) as workers:
        results = list(workers.map(request, secrets))
    assert len({name for name, _ in results}) == requests
    slowest = max(seconds for _, seconds in results)
    assert slowest < 5, f"signing in took up to {slowest:.1f} s (the pool timeout is 30 s)"
