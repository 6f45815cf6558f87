"""Trainer callbacks: the one place that checks a callback's signature and applies it.

Callbacks are not user actions: the trainer proves it speaks for one job with that job's secret
(HMAC over the timestamp and body, services.infra.signing). The signature is checked before the
body is parsed or anything is written. Refused callbacks answer 401, which the REST middleware
audits; accepted ones are recorded as job events, not audit rows.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from pydantic import ValidationError

from services.domain import jobs, notifications
from services.domain.models import Job
from services.errors import InvalidInput, NotFound, Unauthorized
from services.infra import signing
from services.infra.db import session_scope
from services.infra.queue import enqueue_dispatch, enqueue_notifications, room_freed
from services.infra.trainer_protocol import TrainerEvent


def parse_event(body: bytes) -> TrainerEvent:
    try:
        return TrainerEvent.model_validate_json(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        if where == "type" and first["type"] == "literal_error":
            allowed = sorted(TrainerEvent.model_fields["type"].annotation.__args__)  # type: ignore[union-attr]
            raise InvalidInput(f"Unknown callback type {first['input']!r}; allowed: {allowed}") from exc
        raise InvalidInput(f"Callback {where or 'body'}: {first['msg']}") from exc


@dataclass
class Applied:
    """What applying one callback did, for the work that must wait for its commit."""

    result: str  # 'applied', 'duplicate' or 'ignored' (see jobs.apply_callback)
    requeued_attempt: int | None = None  # a lost attempt put the job back in the queue
    ended: bool = False  # the attempt ended: its place at the trainer is free
    notifications: list[int] = field(default_factory=list)  # notification events it wrote


def apply(*, job_id: int, body: bytes, timestamp: str | None, signature: str | None) -> Applied:
    """Verify and store one callback."""
    with session_scope() as session:
        job = session.get(Job, job_id)
        if job is None:
            raise NotFound(f"Job {job_id} does not exist")
        if not signing.verify(job.callback_secret, timestamp, signature, body):
            raise Unauthorized("Bad or stale callback signature")
        event = parse_event(body)
        result = jobs.apply_callback(session, job, event.model_dump(exclude_unset=True))
        return Applied(
            result=result,
            requeued_attempt=job.attempt if job.state in jobs.QUEUE_STATES else None,
            ended=result == "applied" and event.type == "finished",
            notifications=notifications.pending(session) if result == "applied" else [],
        )


async def receive(*, job_id: int, body: bytes, timestamp: str | None, signature: str | None) -> str:
    """`apply` (in a thread), then, after the commit: wake the dispatcher when a lost attempt put
    the job back in the queue (it starts without waiting for the idle check) or when an attempt
    ended (the next waiting job takes its place at once); hand a finished job's notifications to
    the worker."""
    done = await asyncio.to_thread(apply, job_id=job_id, body=body, timestamp=timestamp, signature=signature)
    if done.requeued_attempt is not None:
        await enqueue_dispatch(job_id, done.requeued_attempt)
    elif done.ended:
        await room_freed(job_id)
    if done.notifications:
        await enqueue_notifications(done.notifications)
    return done.result
