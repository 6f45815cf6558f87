"""The job queue (arq on Redis): every Redis name the platform uses is defined here."""

from __future__ import annotations

import logging

from arq import create_pool
from arq.connections import ArqRedis, RedisSettings
from redis.exceptions import RedisError

from services.infra.settings import get_settings

QUEUE_NAME = "vtp:queue"
DISPATCH_TASK = "dispatch_job"
log = logging.getLogger("vtp.queue")


def redis_settings() -> RedisSettings:
    return RedisSettings.from_dsn(get_settings().redis_dsn)


async def enqueue_dispatch(job_id: int, attempt: int, *, nonce: str = "") -> bool:
    """Queue the dispatch of one job attempt; the arq job id makes a second enqueue a no-op.

    A `nonce` makes a fresh arq job for the same attempt: used when the previous dispatch was
    lost with its worker, whose arq entry stays locked until it expires. Running two dispatches
    of one attempt is safe: the trainer keys on `job_id:attempt` and starts it once.

    Returns False when Redis is unreachable: the job row stays `queued` and the worker's
    reconciler enqueues it once Redis is back, so callers report that instead of failing.
    """
    settings = redis_settings()
    settings.conn_retries = 1  # a request must not hang on a down queue; the reconciler catches up
    try:
        pool: ArqRedis = await create_pool(settings, default_queue_name=QUEUE_NAME)
        try:
            await pool.enqueue_job(
                DISPATCH_TASK, job_id, attempt, _job_id=f"dispatch:{job_id}:{attempt}{nonce}"
            )
        finally:
            await pool.aclose()
    except (RedisError, OSError) as exc:
        log.warning("job %s not queued yet (%s); the reconciler will queue it", job_id, type(exc).__name__)
        return False
    return True
