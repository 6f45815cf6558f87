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
from arq import Retry
from arq.cron import cron
from arq.worker import func
from prometheus_client import start_http_server
from redis.asyncio import Redis
from redis.exceptions import LockError
from sqlmodel import Session

from services.actions import sweeps
from services.domain import jobs, notifications
from services.domain.models import Job, JobState, id_of, utcnow
from services.infra import errortracking, logs, metrics, notify
from services.infra.db import session_scope
from services.infra.queue import (
    NOTIFY_DELIVERY_JOB,
    NOTIFY_EVENT_JOB,
    QUEUE_NAME,
    SWEEP_STEP,
    enqueue_notifications,
    redis_settings,
    sweep_lock,
    wake,
)
from services.infra.settings import get_settings
from services.infra.trainer_client import CircuitBreakerError, TrainerClient, breaker
from services.runtime import dispatcher

log = logging.getLogger("vtp.worker")
TRAINER_ALIVE = {"accepted", "running"}


async def _trainer_view(client: TrainerClient, job_id: int) -> tuple[dict[str, Any] | None, str]:
    try:
        return await client.job_status(job_id), "trainer no longer knows this attempt"
    except (httpx.HTTPError, CircuitBreakerError) as exc:
        metrics.trainer_error(exc)
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
    # Every pass, so the breaker's gauge exists (and falls back to 0) even when all is quiet.
    metrics.BREAKER_OPEN.labels("trainer").set(1 if breaker().opened else 0)
    cutoff = utcnow() - timedelta(seconds=settings.heartbeat_timeout_s)
    with session_scope() as session:
        silent = [(id_of(j), j.attempt) for j in jobs.silent_jobs(session, silent_since=cutoff)]
    if not silent:
        return None  # nothing to do: keep the worker's log quiet
    views = {job_id: await _trainer_view(client, job_id) for job_id, _ in silent}
    counts = {"alive": 0, "finished": 0, "retried": 0, "failed": 0, "requeued": 0}
    events: list[int] = []
    for job_id, attempt in silent:
        status, why = views[job_id]
        try:
            with logs.bound(job_id=job_id, attempt=attempt), session_scope() as session:
                job = session.get(Job, job_id)
                if job is None or job.attempt != attempt or JobState(job.state) not in jobs.ACTIVE:
                    continue  # a callback moved it meanwhile
                outcome = _settle(
                    session, job, status, why, settings.heartbeat_timeout_s, settings.max_attempts
                )
                counts[outcome] += 1
                if outcome != "alive":
                    log.warning("silent job %s: %s", outcome, why, extra={"project_id": job.project_id})
                pending = notifications.pending(session)
        except jobs.StateChanged:
            continue  # a callback (or a user) moved it while this pass decided: nothing written
        events += pending  # committed now
    if counts["retried"] or counts["requeued"]:
        await wake(ctx["redis"])
    await enqueue_notifications(events)
    for action, n in counts.items():
        if n and action != "alive":
            metrics.RECONCILER_ACTIONS.labels(action).inc(n)
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


# --- notifications --------------------------------------------------------------------------------


async def notify_event(ctx: dict[str, Any], event_id: int) -> int:
    """Fan one committed event out: one `deliver` job per target (rules, the owner's e-mail).
    Safe to run twice: `notifications.fan_out` hands the targets out once."""

    def targets() -> list[str]:
        with session_scope() as session:
            return notifications.fan_out(session, event_id=event_id)

    keys = await asyncio.to_thread(targets)
    for key in keys:
        await ctx["redis"].enqueue_job(
            "deliver",
            event_id,
            key,
            _job_id=NOTIFY_DELIVERY_JOB.format(event_id=event_id, target=key),
            _queue_name=QUEUE_NAME,
        )
    return len(keys)


async def _send(target: notifications.Delivery) -> None:
    if target.kind == "webhook":
        await notify.send_webhook(
            target.url, secret=target.secret, event=target.event, payload=target.payload
        )
    elif target.kind == "email":
        await asyncio.to_thread(notify.send_email, target.url, subject=target.title, body=target.body)
    else:
        await notify.send_apprise(target.url, title=target.title, body=target.body)


def _log(target: notifications.Delivery, attempt: int, status: str, detail: str = "") -> None:
    with session_scope() as session:
        notifications.log_attempt(session, target, attempt=attempt, status=status, detail=detail)


async def deliver(ctx: dict[str, Any], event_id: int, target_key: str) -> str:
    """One attempt to send one event to one target, logged whatever happens. A failure is tried
    again after `notify_retry_base_s`, doubling each time, up to `notify_max_tries` attempts."""
    settings = get_settings()
    attempt = int(ctx.get("job_try", 1))

    def load() -> notifications.Delivery | None:
        with session_scope() as session:
            return notifications.delivery(session, event_id=event_id, target_key=target_key)

    target = await asyncio.to_thread(load)
    if target is None:
        return "gone"  # the rule was removed, or the user switched notifications off
    try:
        await asyncio.wait_for(_send(target), timeout=settings.notify_timeout_s * 2)
    except (notify.SendError, TimeoutError) as exc:
        detail = str(exc) or "timed out"
        if attempt < settings.notify_max_tries:
            delay = settings.notify_retry_base_s * 2 ** (attempt - 1)
            await asyncio.to_thread(_log, target, attempt, "retrying", f"{detail}; next try in {delay:g}s")
            raise Retry(defer=delay) from exc
        await asyncio.to_thread(
            _log, target, attempt, "failed", f"{detail}; gave up after {attempt} attempts"
        )
        return "failed"
    await asyncio.to_thread(_log, target, attempt, "sent")
    return "sent"


async def notify_unsent(ctx: dict[str, Any]) -> int | None:
    """Send what was committed but never handed over (a crash after a commit, Redis away, a path
    that does not enqueue, such as the dispatcher failing a job)."""

    def unsent() -> list[int]:
        with session_scope() as session:
            return notifications.unsent_events(session, older_than_s=UNSENT_AFTER_S)

    found = await asyncio.to_thread(unsent)
    for event_id in found:
        await ctx["redis"].enqueue_job(
            "notify_event",
            event_id,
            _job_id=NOTIFY_EVENT_JOB.format(event_id=event_id),
            _queue_name=QUEUE_NAME,
        )
    return len(found) or None


async def startup(ctx: dict[str, Any]) -> None:
    settings = get_settings()
    logs.configure("worker", fmt=settings.log_format)
    errortracking.init("worker")
    ctx["trainer"] = TrainerClient.from_settings()
    if settings.worker_metrics_port:
        # A worker in its own container has no web app to serve its metrics: it serves them itself.
        start_http_server(settings.worker_metrics_port, addr=settings.host, registry=metrics.registry())
    await dispatcher.start(ctx)


async def shutdown(ctx: dict[str, Any]) -> None:
    await dispatcher.stop(ctx)


def _every(seconds: int) -> set[int]:
    return set(range(0, 60, seconds)) if 60 % seconds == 0 else {0}


# An event this old and not yet fanned out was never handed to the worker (see notify_unsent).
UNSENT_AFTER_S = 10


class WorkerSettings:
    # No training jobs here: waiting jobs wait in the database, and the dispatcher started in
    # `startup` drains them. arq runs the reconcilers, sends notifications, moves sweeps on
    # (a step is queued after a trial's callback commits) and owns the Redis connection.
    functions: list[Any] = [
        func(notify_event, timeout=60, max_tries=3),
        func(deliver, timeout=120, max_tries=get_settings().notify_max_tries),
        func(sweep_step, name=SWEEP_STEP, timeout=360, max_tries=3, keep_result=0),
    ]
    cron_jobs = [
        cron(notify_unsent, second={5, 35}, unique=True, timeout=60),
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
