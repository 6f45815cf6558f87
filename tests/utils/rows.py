"""Minimal database rows for tests: placeholder jobs on an in-memory SQLite schema, and a
dataset version (with its dataset) for tests that insert jobs into a real one."""

from __future__ import annotations

from sqlmodel import Session

from services.domain.models import Dataset, DatasetVersion, Job, JobState


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


def dataset_version_row(session: Session, *, project_id: int, created_by: int) -> DatasetVersion:
    """Version 1 of a new dataset "d" of the project (a YOLO detection dataset at a placeholder
    URI): what a job row needs to point at."""
    dataset = Dataset(project_id=project_id, name="d", created_by=created_by)
    session.add(dataset)
    session.flush()
    version = DatasetVersion(dataset_id=dataset.id, version=1, format="yolo", task="detect", uri="s3://b/k/")
    session.add(version)
    session.flush()
    return version
