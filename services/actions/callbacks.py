"""Trainer callbacks: the one place that checks a callback's signature and applies it.

Callbacks are not user actions: the trainer proves it speaks for one job with that job's secret
(HMAC over the timestamp and body, services.infra.signing). The signature is checked before the
body is parsed or anything is written. Refused callbacks answer 401, which the REST middleware
audits; accepted ones are recorded as job events, not audit rows.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError
from sqlalchemy.exc import IntegrityError

from services.domain import jobs, notifications
from services.domain.models import Job
from services.errors import InvalidInput, NotFound, Overloaded, Unauthorized
from services.infra import logs, signing
from services.infra.db import session_scope
from services.infra.queue import enqueue_dispatch, enqueue_notifications, enqueue_sweep_step, room_freed
from services.infra.trainer_protocol import MAX_BATCH_EVENTS, BatchResult, TrainerBatch, TrainerEvent

# A concurrent delivery of the same event makes a commit fail on the unique event id; applying
# the callbacks again then finds it stored (a duplicate). More races than this in a row is load.
STORE_TRIES = 3
EVENT_TYPES = sorted(TrainerEvent.model_fields["type"].annotation.__args__)  # type: ignore[union-attr]


def _explain(error: Any, what: str) -> str:
    """One sentence for the first thing wrong in an event (`what` names the event)."""
    where = ".".join(str(part) for part in error["loc"])
    if where == "type" and error["type"] == "literal_error":
        return f"Unknown {what} type {error['input']!r}; allowed: {EVENT_TYPES}"
    return f"{what.capitalize()} {where or 'body'}: {error['msg']}"


def parse_event(body: bytes) -> list[TrainerEvent]:
    """The one event of a single callback."""
    try:
        return [TrainerEvent.model_validate_json(body)]
    except ValidationError as exc:
        raise InvalidInput(_explain(exc.errors()[0], "callback")) from exc


def parse_batch(body: bytes) -> list[TrainerEvent]:
    """The events of a batch (v1.6); a bad one refuses the whole batch, naming it by position and
    event id, so the trainer (or a person reading its log) knows which event to fix."""
    try:
        return TrainerBatch.model_validate_json(body).events
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = first["loc"]
        if len(loc) >= 2 and loc[0] == "events" and isinstance(loc[1], int):
            index = loc[1]
            item = _raw_item(body, index)
            named = f" (event_id {item['event_id']!r})" if isinstance(item.get("event_id"), str) else ""
            detail = _explain({**first, "loc": loc[2:]}, "callback")
            raise InvalidInput(f"Batch event {index}{named} refused, nothing applied: {detail}") from exc
        if loc[:1] == ("events",) and first["type"] in {"too_short", "too_long"}:
            raise InvalidInput(f"Batch 'events' must hold 1 to {MAX_BATCH_EVENTS} events") from exc
        raise InvalidInput(f"Batch {'.'.join(str(p) for p in loc) or 'body'}: {first['msg']}") from exc


def _raw_item(body: bytes, index: int) -> dict[str, Any]:
    """Item `index` of a batch body that failed validation, as sent (to name its event id)."""
    import json

    try:
        item = json.loads(body)["events"][index]
    except (ValueError, KeyError, IndexError, TypeError):
        return {}
    return item if isinstance(item, dict) else {}


@dataclass
class Applied:
    """What applying callbacks did, for the work that must wait for their commit."""

    results: list[tuple[str, str]]  # (event_id, 'applied' | 'duplicate' | 'ignored'), in order
    requeued_attempt: int | None = None  # a lost attempt put the job back in the queue
    ended: bool = False  # the attempt ended: its place at the trainer is free
    notifications: list[int] = field(default_factory=list)  # notification events it wrote
    sweep_id: int | None = None  # a sweep trial reported an epoch or ended: its sweep steps


def apply(
    *,
    job_id: int,
    body: bytes,
    timestamp: str | None,
    signature: str | None,
    parse: Callable[[bytes], list[TrainerEvent]] = parse_event,
) -> Applied:
    """Verify and store one callback (or, with `parse=parse_batch`, a batch) in one transaction."""
    logs.bind(job_id=job_id)
    for attempt in range(1, STORE_TRIES + 1):
        try:
            with session_scope() as session:
                job = session.get(Job, job_id)
                if job is None:
                    raise NotFound(f"Job {job_id} does not exist")
                logs.bind(attempt=job.attempt, project_id=job.project_id)
                if not signing.verify(job.callback_secret, timestamp, signature, body):
                    raise Unauthorized("Bad or stale callback signature")
                events = parse(body)
                results = jobs.apply_callbacks(
                    session, job, [event.model_dump(exclude_unset=True) for event in events]
                )
                applied = [
                    event for event, result in zip(events, results, strict=True) if result == "applied"
                ]
                done = Applied(
                    results=[(event.event_id, result) for event, result in zip(events, results, strict=True)],
                    requeued_attempt=job.attempt if job.state in jobs.QUEUE_STATES else None,
                    ended=any(event.type == "finished" for event in applied),
                    notifications=notifications.pending(session) if applied else [],
                    sweep_id=job.sweep_id if any(e.type in {"epoch", "finished"} for e in applied) else None,
                )
            return done
        except (IntegrityError, jobs.StateChanged) as exc:
            # A concurrent delivery of the same event, or of an event that moved the job (its end):
            # apply again on the job as it is now, where that event is a duplicate or this one late.
            if attempt == STORE_TRIES:
                raise Overloaded() from exc
    raise AssertionError("unreachable")


async def _after_commit(job_id: int, done: Applied) -> None:
    """Wake the dispatcher when a lost attempt put the job back in the queue (it starts without
    waiting for the idle check) or when an attempt ended (the next waiting job takes its place at
    once); hand a finished job's notifications to the worker; when a sweep trial reported an epoch
    or ended, ask the worker to move its sweep on (pruning, the next trials) - never in this request."""
    if done.requeued_attempt is not None:
        await enqueue_dispatch(job_id, done.requeued_attempt)
    elif done.ended:
        await room_freed(job_id)
    if done.notifications:
        await enqueue_notifications(done.notifications)
    if done.sweep_id is not None:
        await enqueue_sweep_step(done.sweep_id)


async def receive(*, job_id: int, body: bytes, timestamp: str | None, signature: str | None) -> str:
    """`apply` one callback (in a thread), then the work that waits for its commit."""
    done = await asyncio.to_thread(apply, job_id=job_id, body=body, timestamp=timestamp, signature=signature)
    await _after_commit(job_id, done)
    return done.results[0][1]


async def receive_batch(
    *, job_id: int, body: bytes, timestamp: str | None, signature: str | None
) -> BatchResult:
    """`apply` a batch of one job's events (v1.6) in one transaction, then the work that waits for
    its commit, once for the whole batch (watching pages get one notice per batch, too)."""
    done = await asyncio.to_thread(
        apply, job_id=job_id, body=body, timestamp=timestamp, signature=signature, parse=parse_batch
    )
    await _after_commit(job_id, done)
    return BatchResult.model_validate(
        {
            "results": [{"event_id": event_id, "result": result} for event_id, result in done.results],
            "applied": sum(result == "applied" for _, result in done.results),
        }
    )
