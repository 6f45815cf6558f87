"""The job queue: every Redis name the platform uses is defined here.

Waiting jobs wait in the database (state `queued` or `retrying`): that is the one queue, and the
one dispatcher in the arq worker (services.runtime.dispatcher) drains it in order. Redis only
carries a wake-up for the dispatcher and its lock, so a waiting job has no queue entry that could
be lost, duplicated or retried on its own.
"""

from __future__ import annotations

import logging

from arq.connections import RedisSettings, create_pool
from redis.asyncio import Redis
from redis.exceptions import RedisError

from services.infra.settings import get_settings

QUEUE_NAME = "vtp:queue"  # arq's queue: the reconciler's cron runs through it
# A list of at most one entry: "look at the queue now" (a new job, a retry, a freed place).
DISPATCH_WAKE = "vtp:dispatch:wake"
# The wake-up's value when an attempt ended: the gateway has room again, so the dispatcher may ask
# for capacity at once instead of keeping to its once-a-second pace for waiting jobs.
WAKE_WORK, WAKE_ROOM = "work", "room"
# Held by the dispatcher that runs; a second worker's dispatcher stands by while it is held.
DISPATCH_LOCK = "vtp:dispatch:lock"
# arq job ids of notification work: one fan-out per event, one delivery per (event, target).
NOTIFY_EVENT_JOB = "vtp:notify:event:{event_id}"
NOTIFY_DELIVERY_JOB = "vtp:notify:deliver:{event_id}:{target}"
log = logging.getLogger("vtp.queue")


def redis_settings() -> RedisSettings:
    return RedisSettings.from_dsn(get_settings().redis_dsn)


async def wake(redis: Redis, reason: str = WAKE_WORK) -> None:
    """Ask the dispatcher to look at the queue now; many wake-ups before it looks are one."""
    async with redis.pipeline(transaction=True) as pipe:
        pipe.lpush(DISPATCH_WAKE, reason)
        pipe.ltrim(DISPATCH_WAKE, 0, 0)
        await pipe.execute()


async def room_freed(job_id: int) -> None:
    """An attempt ended (its `finished` callback is committed): let the dispatcher hand the next
    waiting job over now. Best effort: without Redis the dispatcher's own pace still gets there."""
    redis = Redis.from_url(get_settings().redis_dsn, socket_timeout=2, socket_connect_timeout=2)
    try:
        await wake(redis, WAKE_ROOM)
    except (RedisError, OSError) as exc:
        log.warning("job %s finished; dispatcher not woken (%s)", job_id, type(exc).__name__)
    finally:
        await redis.aclose()


async def enqueue_dispatch(job_id: int, attempt: int) -> bool:
    """Tell the dispatcher that job `job_id` (attempt `attempt`, for the log) waits; call it after
    the job's row is committed.

    The job is already in the queue by being `queued` in the database; this only makes the
    dispatcher look at once instead of at its next idle check (a few seconds). Returns False when
    Redis is unreachable: the job still starts, a little later, so callers may say so but must not
    fail.
    """
    redis = Redis.from_url(get_settings().redis_dsn, socket_timeout=2, socket_connect_timeout=2)
    try:
        await wake(redis)
    except (RedisError, OSError) as exc:
        log.warning("job %s:%s saved; dispatcher not woken (%s)", job_id, attempt, type(exc).__name__)
        return False
    finally:
        await redis.aclose()
    return True


async def enqueue_notifications(event_ids: list[int]) -> bool:
    """Hand committed notification events (services.domain.notifications) to the worker; call it
    after the commit that wrote them. Returns False when Redis is unreachable: the worker's sweep
    of unsent events sends them a little later, so callers must not fail."""
    if not event_ids:
        return True
    try:
        settings = redis_settings()
        settings.conn_retries = 0  # a web request must not wait for Redis to come back
        pool = await create_pool(settings)
    except (RedisError, OSError) as exc:
        log.warning("notifications %s saved; worker not told (%s)", event_ids, type(exc).__name__)
        return False
    try:
        for event_id in event_ids:
            await pool.enqueue_job(
                "notify_event",
                event_id,
                _job_id=NOTIFY_EVENT_JOB.format(event_id=event_id),
                _queue_name=QUEUE_NAME,
            )
    except (RedisError, OSError) as exc:
        log.warning("notifications %s saved; worker not told (%s)", event_ids, type(exc).__name__)
        return False
    finally:
        await pool.aclose()
    return True
