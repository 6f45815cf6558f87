"""The arq worker: takes queued jobs and hands them to a trainer over HTTP.

It never trains and never imports the trainer; it sends s3:// URIs, a callback URL and the
job's secret, then the trainer's callbacks drive the job through the REST API.
"""

from __future__ import annotations

import logging
from typing import Any

import httpx
from arq import Retry
from arq.worker import func

from services import datasets, jobs
from services.db import session_scope
from services.models import Job, JobState
from services.queue import DISPATCH_TASK, QUEUE_NAME, redis_settings
from services.settings import get_settings
from services.trainer_client import TrainerBusy, TrainerClient, TrainerRejected

log = logging.getLogger("vtp.worker")
MAX_DISPATCH_TRIES = 20


async def dispatch_job(ctx: dict[str, Any], job_id: int, attempt: int) -> str:
    settings = get_settings()
    with session_scope() as session:
        job = session.get(Job, job_id)
        if job is None or job.attempt != attempt:
            return "stale"
        if JobState(job.state) not in {JobState.queued, JobState.retrying, JobState.dispatching}:
            return f"skipped ({job.state})"
        jobs.transition(session, job, JobState.dispatching, reason="worker picked it up")
        version = datasets.get_version(session, project_id=job.project_id, version_id=job.dataset_version_id)
        spec = jobs.dispatch_spec(
            job,
            dataset_uri=version.uri,
            callback_url=f"{settings.api_base_url}/api/v1/trainer/callbacks/{job.id}",
            heartbeat_s=settings.heartbeat_interval_s,
        )
    client: TrainerClient = ctx["trainer"]
    try:
        await client.start_job(spec)
    except TrainerBusy as exc:
        log.info("trainer busy for job %s; retrying in %ss", job_id, exc.retry_after_s)
        raise Retry(defer=exc.retry_after_s) from exc
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
        if job is not None and JobState(job.state) == JobState.dispatching:
            jobs.transition(session, job, JobState.running, reason="trainer accepted")
    return "dispatched"


def _fail(job_id: int, kind: str, message: str) -> None:
    with session_scope() as session:
        job = session.get(Job, job_id)
        if job is not None and jobs.can_transition(JobState(job.state), JobState.failed):
            job.error_kind, job.error_message = kind, message
            jobs.transition(session, job, JobState.failed, reason=message)


async def startup(ctx: dict[str, Any]) -> None:
    ctx["trainer"] = TrainerClient.from_settings()


class WorkerSettings:
    functions = [func(dispatch_job, name=DISPATCH_TASK, timeout=120, max_tries=MAX_DISPATCH_TRIES)]
    queue_name = QUEUE_NAME
    redis_settings = redis_settings()
    on_startup = startup
    poll_delay = 0.2
    # Keep results briefly only: the database is the record of what happened.
    keep_result = 60
