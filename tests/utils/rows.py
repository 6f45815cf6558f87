"""Minimal database rows for unit tests that run on an in-memory SQLite schema."""

from __future__ import annotations

from sqlmodel import Session

from services.domain.models import Job, JobState


def job_row(session: Session, state: JobState, *, project_id: int = 1) -> Job:
    """A job in `state`, with placeholder references (in-memory schemas do not enforce them)."""
    job = Job(
        project_id=project_id,
        dataset_version_id=1,
        created_by=1,
        name="j",
        framework="ultralytics",
        task="detect",
        model="yolo11n.yaml",
        callback_secret="s",
        state=state,
    )
    session.add(job)
    session.flush()
    return job
