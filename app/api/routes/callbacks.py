"""Trainer callbacks: signed per job; the signature is checked before anything is read or written."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request

from app.api.deps import PathId, SessionDep
from services.domain import jobs
from services.domain.models import Job, JobState
from services.errors import InvalidInput, NotFound, Unauthorized
from services.infra import signing
from services.infra.queue import enqueue_dispatch

router = APIRouter(prefix="/trainer/callbacks", tags=["trainer"])

REQUIRED = ("event_id", "type")
TYPES = {"started", "heartbeat", "epoch", "finished"}
FINAL_STATES = {"succeeded", "failed", "cancelled"}


@router.post("/{job_id}")
async def trainer_callback(job_id: PathId, request: Request, session: SessionDep) -> dict[str, str]:
    body = await request.body()
    job = session.get(Job, job_id)
    if job is None:
        raise NotFound(f"Job {job_id} does not exist")
    if not signing.verify(
        job.callback_secret,
        request.headers.get(signing.TIMESTAMP_HEADER),
        request.headers.get(signing.SIGNATURE_HEADER),
        body,
    ):
        raise Unauthorized("Bad or stale callback signature")
    event = _parse(body)
    result = jobs.apply_callback(session, job, event)
    if job.state == JobState.retrying:
        # A lost attempt goes back in the queue: commit, then have the dispatcher look now.
        session.commit()
        await enqueue_dispatch(job.id, job.attempt)
    return {"result": result}


def _parse(body: bytes) -> dict[str, Any]:
    try:
        event = json.loads(body)
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"Callback body is not JSON: {exc}") from exc
    if not isinstance(event, dict) or any(k not in event for k in REQUIRED):
        raise InvalidInput(f"Callback needs fields {list(REQUIRED)}")
    if event["type"] not in TYPES:
        raise InvalidInput(f"Unknown callback type {event['type']!r}; allowed: {sorted(TYPES)}")
    if event["type"] == "epoch" and not isinstance(event.get("epoch"), int):
        raise InvalidInput("An epoch callback needs an integer 'epoch'")
    if event["type"] == "finished" and event.get("state") not in FINAL_STATES:
        raise InvalidInput(f"A finished callback needs 'state' in {sorted(FINAL_STATES)}")
    return event
