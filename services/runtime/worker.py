"""The arq worker: runs the one dispatcher (services.runtime.dispatcher) and reconciles jobs that
went silent.

It never trains and never imports the trainer; it sends s3:// URIs, a callback URL and the
job's secret, then the trainer's callbacks drive the job through the REST API. Dispatch is
idempotent per job attempt (the trainer keys on `job_id:attempt`), so a worker killed between
taking a job and the trainer accepting it neither loses the job nor starts it twice: the
reconciler finds the silent `dispatching` job, puts it back in the queue, and the trainer answers
a second offer with the attempt it already has.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from typing import Any

import httpx
from arq import func
from arq.cron import cron
from redis.asyncio import Redis
from redis.exceptions import LockError
from sqlmodel import Session

from services.actions import sweeps
from services.domain import jobs
from services.domain.models import Job, JobState, id_of, utcnow
from services.infra.db import session_scope
from services.infra.queue import QUEUE_NAME, SWEEP_STEP, redis_settings, sweep_lock, wake
from services.infra.settings import get_settings
from services.infra.trainer_client import CircuitBreakerError, TrainerClient
from services.runtime import dispatcher

log = logging.getLogger("vtp.worker")
TRAINER_ALIVE = {"accepted", "running"}


async def _trainer_view(client: TrainerClient, job_id: int) -> tuple[dict[str, Any] | None, str]:
    try:
        return await client.job_status(job_id), "trainer no longer knows this attempt"
    except (httpx.HTTPError, CircuitBreakerError) as exc:
        return None, f"trainer unreachable ({exc.__class__.__name__})"


async def reconcile(ctx: dict[str, Any]) -> dict[str, int] | None:
    """Ask the trainer about every silent job; resume the ones whose attempt is gone.

    Only jobs a trainer should be reporting on (`dispatching`, `running`) are looked at: a job
    merely waiting in the queue is the dispatcher's, and costs this pass nothing. Trainer calls
    happen outside any database transaction, so a slow trainer never holds a lock that callbacks
    need.
    """
    settings = get_settings()
    client: TrainerClient = ctx["trainer"]
    cutoff = utcnow() - timedelta(seconds=settings.heartbeat_timeout_s)
    with session_scope() as session:
        silent = [(id_of(j), j.attempt) for j in jobs.silent_jobs(session, silent_since=cutoff)]
    if not silent:
        return None  # nothing to do: keep the worker's log quiet
    views = {job_id: await _trainer_view(client, job_id) for job_id, _ in silent}
    counts = {"alive": 0, "finished": 0, "retried": 0, "failed": 0, "requeued": 0}
    for job_id, attempt in silent:
        status, why = views[job_id]
        with session_scope() as session:
            job = session.get(Job, job_id)
            if job is None or job.attempt != attempt or JobState(job.state) not in jobs.ACTIVE:
                continue  # a callback moved it meanwhile
            outcome = _settle(session, job, status, why, settings.heartbeat_timeout_s, settings.max_attempts)
            counts[outcome] += 1
    if counts["retried"] or counts["requeued"]:
        await wake(ctx["redis"])
    if not any(v for k, v in counts.items() if k != "alive"):
        return None
    log.warning("reconciled jobs: %s", counts)
    return counts


def _settle(
    session: Session, job: Job, status: dict[str, Any] | None, why: str, timeout_s: float, max_attempts: int
) -> str:
    """Decide one silent job from the trainer's answer; returns what was done."""
    if status is not None and int(status.get("attempt", 0)) == job.attempt:
        if status["state"] in TRAINER_ALIVE:
            return "alive"
        if status["state"] in {"succeeded", "cancelled"}:
            final = JobState(status["state"])
            if jobs.can_transition(JobState(job.state), final):
                # Its final callback never arrived; the trainer's own record decides.
                jobs.transition(session, job, final, reason="state from trainer")
                return "finished"
        if status["state"] == "failed":
            # A failure we only learn by asking means the attempt died without reporting
            # (killed, restarted trainer, lost node): resume it like a lost trainer.
            message = (status.get("error") or {}).get("message")
            why = f"the attempt was lost ({message})" if message else "the trainer lost the attempt"
    if JobState(job.state) == JobState.dispatching:
        jobs.transition(session, job, JobState.queued, reason=f"dispatch lost: {why}")
        return "requeued"
    reason = f"silent for {timeout_s:.0f}s; {why}"
    return (
        "retried" if jobs.retry_or_fail(session, job, reason=reason, max_attempts=max_attempts) else "failed"
    )


async def sweep_step(ctx: dict[str, Any], sweep_id: int) -> dict[str, Any] | None:
    """Move one sweep on (services.actions.sweeps.advance), one step per sweep at a time: a
    step that finds another running waits for it, then does its own (steps are idempotent)."""
    redis: Redis = ctx["redis"]
    try:
        async with redis.lock(sweep_lock(sweep_id), timeout=120, blocking_timeout=30):
            step = await sweeps.advance(sweep_id)
    except LockError:
        log.warning("sweep %s: another step holds the lock; the next pass continues it", sweep_id)
        return None
    if not (step.stop or step.dispatch or step.ended):
        return None
    return {"stopped": step.stop, "started": [j for j, _ in step.dispatch], "ended": step.ended}


async def reconcile_sweeps(ctx: dict[str, Any]) -> int:
    """Step every running sweep: after a restart (of the worker or the whole `vtp`), or when a
    step was missed (Redis was down), the sweeps go on from what the database and study hold."""
    ids = await asyncio.to_thread(sweeps.running_sweeps)
    for sweep_id in ids:
        try:
            await sweep_step(ctx, sweep_id)
        except Exception:  # one broken sweep must not stop the others
            log.exception("sweep %s: step failed", sweep_id)
    return len(ids)


async def startup(ctx: dict[str, Any]) -> None:
    ctx["trainer"] = TrainerClient.from_settings()
    await dispatcher.start(ctx)


async def shutdown(ctx: dict[str, Any]) -> None:
    await dispatcher.stop(ctx)


def _every(seconds: int) -> set[int]:
    return set(range(0, 60, seconds)) if 60 % seconds == 0 else {0}


class WorkerSettings:
    # No job functions: waiting jobs wait in the database, and the dispatcher started in
    # `startup` drains them. arq runs the reconcilers and owns the Redis connection.
    # Sweep steps are queued after a trial's callback commits (services.infra.queue).
    functions: list[Any] = [func(sweep_step, name=SWEEP_STEP, timeout=360, max_tries=3, keep_result=0)]
    cron_jobs = [
        cron(
            reconcile,
            second=_every(get_settings().reconcile_interval_s),
            run_at_startup=True,
            unique=True,
            timeout=60,
        ),
        cron(
            reconcile_sweeps,
            second=_every(max(get_settings().reconcile_interval_s, 5)),
            run_at_startup=True,
            unique=True,
            timeout=600,
        ),
    ]
    queue_name = QUEUE_NAME
    redis_settings = redis_settings()
    on_startup = startup
    on_shutdown = shutdown
    poll_delay = 0.5
    # Keep results briefly only: the database is the record of what happened.
    keep_result = 60
