"""The job queue (arq on Redis): every Redis name the platform uses is defined here."""

from __future__ import annotations

from arq import create_pool
from arq.connections import ArqRedis, RedisSettings

from services.settings import get_settings

QUEUE_NAME = "vtp:queue"
DISPATCH_TASK = "dispatch_job"


def redis_settings() -> RedisSettings:
    return RedisSettings.from_dsn(get_settings().redis_dsn)


async def enqueue_dispatch(job_id: int, attempt: int) -> None:
    """Queue the dispatch of one job attempt; the arq job id makes a second enqueue a no-op."""
    pool: ArqRedis = await create_pool(redis_settings(), default_queue_name=QUEUE_NAME)
    try:
        await pool.enqueue_job(DISPATCH_TASK, job_id, attempt, _job_id=f"dispatch:{job_id}:{attempt}")
    finally:
        await pool.aclose()
