"""Rate limits on Redis (the `limits` library), shared by every web and API process.

Login failures are counted per account and per source IP: when either budget is spent, further
attempts are refused (even with the right password) until the window moves on — a brute-force
lockout that needs no state in the database. API calls are counted per bearer token.

While Redis is unreachable the limits fail open (logged): a queue outage must not take the
whole API down with it, and Redis restarts in seconds (docs/failure-handling.md).
"""

from __future__ import annotations

import functools
import hashlib
import logging
import math
import time
from collections.abc import Callable
from functools import lru_cache
from typing import ParamSpec

from limits import RateLimitItem, parse
from limits.storage import RedisStorage
from limits.strategies import MovingWindowRateLimiter
from redis.exceptions import RedisError

from services.errors import DomainError
from services.infra.settings import get_settings

KEY_PREFIX = "vtp:ratelimit"
log = logging.getLogger("vtp.ratelimit")
P = ParamSpec("P")


def _fail_open(func: Callable[P, None]) -> Callable[P, None]:
    @functools.wraps(func)
    def guarded(*args: P.args, **kwargs: P.kwargs) -> None:
        try:
            func(*args, **kwargs)
        except RedisError as exc:
            log.warning("rate limits unavailable (%s); request allowed", exc.__class__.__name__)

    return guarded


class RateLimited(DomainError):
    """Too many requests; `retry_after_s` becomes the Retry-After header."""

    status_code = 429

    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


@lru_cache
def _limiter(redis_dsn: str) -> MovingWindowRateLimiter:
    return MovingWindowRateLimiter(RedisStorage(redis_dsn, key_prefix=KEY_PREFIX))


def limiter() -> MovingWindowRateLimiter:
    return _limiter(get_settings().redis_dsn)


def _key(value: str) -> str:
    # Usernames and tokens never reach Redis as such: a digest keeps keys short and secret-free.
    return hashlib.sha256(value.encode()).hexdigest()[:32]


def _retry_after(item: RateLimitItem, *identifiers: str) -> int:
    reset = limiter().get_window_stats(item, *identifiers).reset_time
    return max(1, math.ceil(reset - time.time()))


def _login_items() -> tuple[RateLimitItem, RateLimitItem]:
    config = get_settings()
    return parse(config.login_limit_per_account), parse(config.login_limit_per_ip)


@_fail_open
def check_login(*, username: str, source_ip: str) -> None:
    """Refuse a login attempt while the account or the IP is locked out (before any password check)."""
    per_account, per_ip = _login_items()
    for item, scope, value in (
        (per_account, "login-account", username.strip().lower()),
        (per_ip, "login-ip", source_ip),
    ):
        if not limiter().test(item, scope, _key(value)):
            wait = _retry_after(item, scope, _key(value))
            raise RateLimited(f"Too many failed sign-in attempts; try again in {wait} s", wait)


@_fail_open
def login_failed(*, username: str, source_ip: str) -> None:
    per_account, per_ip = _login_items()
    limiter().hit(per_account, "login-account", _key(username.strip().lower()))
    limiter().hit(per_ip, "login-ip", _key(source_ip))


@_fail_open
def login_succeeded(*, username: str) -> None:
    """A correct password clears the account's failure count (the IP's stays)."""
    per_account, _ = _login_items()
    limiter().clear(per_account, "login-account", _key(username.strip().lower()))


@_fail_open
def hit(limit: str, scope: str, value: str, *, message: str) -> None:
    """Count one event against `limit`; raise RateLimited when the budget is spent."""
    item = parse(limit)
    if not limiter().hit(item, scope, _key(value)):
        wait = _retry_after(item, scope, _key(value))
        raise RateLimited(f"{message}; try again in {wait} s", wait)


def api_call(*, token: str) -> None:
    hit(get_settings().api_limit_per_token, "api-token", token, message="Too many API calls")


def clear_caches() -> None:
    _limiter.cache_clear()
