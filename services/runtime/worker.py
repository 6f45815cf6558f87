"""The arq worker: takes queued jobs and hands them to a trainer over HTTP, and reconciles jobs
that went silent.

It never trains and never imports the trainer; it sends s3:// URIs, a callback URL and the
job's secret, then the trainer's callbacks drive the job through the REST API. Dispatch is
idempotent per job attempt (the trainer keys on `job_id:attempt`), so a worker killed between
taking a job and the trainer accepting it neither loses the job nor starts it twice: arq runs
the task again and the trainer answers with the attempt it already has.
"""

from __future__ import annotations

import logging
import time
from datetime import timedelta
from typing import Any

import httpx
from arq import Retry
from arq.cron import cron
from arq.worker import func
from sqlmodel import Session

from services.domain import datasets, jobs, quotas
from services.domain.models import Job, JobState, utcnow
from services.infra import storage
from services.infra.db import session_scope
from services.infra.queue import DISPATCH_TASK, QUEUE_NAME, enqueue_dispatch, redis_settings
from services.infra.settings import get_settings
from services.infra.trainer_client import CircuitBreakerError, TrainerBusy, TrainerClient, TrainerRejected

log = logging.getLogger("vtp.worker")
MAX_DISPATCH_TRIES = 20
TRAINER_ALIVE = {"accepted", "running"}


async def dispatch_job(ctx: dict[str, Any], job_id: int, attempt: int) -> str:
    settings = get_settings()
    with session_scope() as session:
        job = session.get(Job, job_id)
        if job is None or job.attempt != attempt:
            return "stale"
        if JobState(job.state) not in {JobState.queued, JobState.retrying, JobState.dispatching}:
            return f"skipped ({job.state})"
        held = quotas.room_to_run(session, job)
        if held:
            # Like a busy trainer: the job stays queued and this dispatch runs again later. Should
            # arq's tries run out first, the reconciler's waiting-jobs pass enqueues it again.
            log.info("job %s stays queued (%s); retrying in %ss", job_id, held, settings.reconcile_interval_s)
            raise Retry(defer=settings.reconcile_interval_s)
        jobs.transition(session, job, JobState.dispatching, reason="worker picked it up")
        version = datasets.get_version(session, project_id=job.project_id, version_id=job.dataset_version_id)
        checkpoint = jobs.last_checkpoint_uri(job)
        spec = jobs.dispatch_spec(
            job,
            dataset_uri=version.uri,
            callback_url=f"{settings.api_base_url}/api/v1/trainer/callbacks/{job.id}",
            heartbeat_s=settings.heartbeat_interval_s,
            resume_from_uri=checkpoint if attempt > 1 and storage.exists(checkpoint) else None,
        )
    client: TrainerClient = ctx["trainer"]
    try:
        await client.start_job(spec)
    except TrainerBusy as exc:
        log.info("trainer busy for job %s; retrying in %ss", job_id, exc.retry_after_s)
        raise Retry(defer=exc.retry_after_s) from exc
    except CircuitBreakerError as exc:
        # The trainer failed several calls in a row: wait out the breaker instead of timing out.
        raise Retry(defer=settings.trainer_breaker_reset_s) from exc
    except TrainerRejected as exc:
        _fail(job_id, "permanent", str(exc))
        return "rejected"
    except httpx.HTTPError as exc:
        if ctx.get("job_try", 1) >= MAX_DISPATCH_TRIES:
            _fail(job_id, "transient", f"trainer unreachable after {MAX_DISPATCH_TRIES} tries: {exc}")
            return "unreachable"
        raise Retry(defer=min(60, 2 ** ctx.get("job_try", 1))) from exc
    with session_scope() as session:
        job = session.get(Job, job_id)
        if job is not None and job.attempt == attempt and JobState(job.state) == JobState.dispatching:
            jobs.transition(session, job, JobState.running, reason="trainer accepted")
            job.last_heartbeat_at = utcnow()
    return "dispatched"


def _fail(job_id: int, kind: str, message: str) -> None:
    with session_scope() as session:
        job = session.get(Job, job_id)
        if job is not None and jobs.can_transition(JobState(job.state), JobState.failed):
            job.error_kind, job.error_message = kind, message
            jobs.transition(session, job, JobState.failed, reason=message)


async def _trainer_view(client: TrainerClient, job_id: int) -> tuple[dict[str, Any] | None, str]:
    try:
        return await client.job_status(job_id), "trainer no longer knows this attempt"
    except (httpx.HTTPError, CircuitBreakerError) as exc:
        return None, f"trainer unreachable ({exc.__class__.__name__})"


async def reconcile(ctx: dict[str, Any]) -> dict[str, int] | None:
    """Ask the trainer about every silent job; resume the ones whose trainer is gone.

    Trainer calls happen outside any database transaction, so a slow trainer never holds a
    lock that callbacks need.
    """
    settings = get_settings()
    client: TrainerClient = ctx["trainer"]
    cutoff = utcnow() - timedelta(seconds=settings.heartbeat_timeout_s)
    with session_scope() as session:
        silent = [(j.id, j.attempt) for j in jobs.silent_jobs(session, silent_since=cutoff)]
        to_enqueue = [(j.id, j.attempt, "") for j in jobs.waiting_jobs(session, created_before=cutoff)]
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
            if outcome == "retried":
                to_enqueue.append((job.id, job.attempt, ""))
            elif outcome == "requeued":
                to_enqueue.append((job.id, job.attempt, f":lost-{int(time.time())}"))
    for job_id, attempt, nonce in to_enqueue:
        await enqueue_dispatch(job_id, attempt, nonce=nonce)
    settled = any(v for k, v in counts.items() if k != "alive")
    if not settled and not to_enqueue:
        return None  # nothing to do: keep the worker's log quiet
    # Jobs merely waiting for a free trainer are offered again every pass (arq drops the duplicate):
    # worth a line only at debug level, or the log repeats itself while a long job runs.
    (log.warning if settled else log.debug)("reconciled jobs: %s, re-enqueued %d", counts, len(to_enqueue))
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
            # (killed, restarted trainer): transient, so resume it like a lost trainer.
            why = "the trainer lost the attempt (its process died)"
    if JobState(job.state) == JobState.dispatching:
        jobs.transition(session, job, JobState.queued, reason=f"dispatch lost: {why}")
        return "requeued"
    reason = f"silent for {timeout_s:.0f}s; {why}"
    return (
        "retried" if jobs.retry_or_fail(session, job, reason=reason, max_attempts=max_attempts) else "failed"
    )


async def startup(ctx: dict[str, Any]) -> None:
    ctx["trainer"] = TrainerClient.from_settings()


def _every(seconds: int) -> set[int]:
    return set(range(0, 60, seconds)) if 60 % seconds == 0 else {0}


class WorkerSettings:
    # Short timeouts: a worker that dies holds its arq entries for the longest timeout + 10 s.
    functions = [func(dispatch_job, name=DISPATCH_TASK, timeout=60, max_tries=MAX_DISPATCH_TRIES)]
    cron_jobs = [
        cron(
            reconcile,
            second=_every(get_settings().reconcile_interval_s),
            run_at_startup=True,
            unique=True,
            timeout=60,
        )
    ]
    queue_name = QUEUE_NAME
    redis_settings = redis_settings()
    on_startup = startup
    poll_delay = 0.2
    # Keep results briefly only: the database is the record of what happened.
    keep_result = 60
