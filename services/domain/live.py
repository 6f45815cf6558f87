"""Publishes "job changed" notices after every commit that touched a job, whoever wrote it.

Hooked on the ORM session, so the web app (callbacks, cancels, new jobs) and the worker
(dispatch, reconciler) notify watching pages without each call site remembering to: a notice
for a write that was rolled back is never sent, and one is never sent before the commit that a
page would then read.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import Session as OrmSession

from services.domain.models import Job, JobMetric, Sweep
from services.infra import live

_KEY = "vtp_live_channels"


@event.listens_for(OrmSession, "after_flush")
def _collect(session: OrmSession, _context: Any) -> None:
    channels: set[str] = session.info.setdefault(_KEY, set())
    for obj in [*session.new, *session.dirty]:
        if isinstance(obj, Job) and obj.id is not None:
            channels.update({live.job_channel(obj.id), live.project_channel(obj.project_id)})
            if obj.sweep_id is not None:
                channels.add(live.sweep_channel(obj.sweep_id))
        elif isinstance(obj, Sweep) and obj.id is not None:
            channels.update({live.sweep_channel(obj.id), live.project_channel(obj.project_id)})
        elif isinstance(obj, JobMetric):
            channels.add(live.job_channel(obj.job_id))


@event.listens_for(OrmSession, "after_commit")
def _publish(session: OrmSession) -> None:
    channels = session.info.pop(_KEY, None)
    if channels:
        live.publish(channels)


@event.listens_for(OrmSession, "after_rollback")
def _forget(session: OrmSession) -> None:
    session.info.pop(_KEY, None)
