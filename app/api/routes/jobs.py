from __future__ import annotations

import httpx
from fastapi import APIRouter

from app.api.deps import CurrentUser, SessionDep
from services import jobs
from services.errors import DomainError
from services.models import JobState, Role
from services.permissions import require_role
from services.queue import enqueue_dispatch
from services.schemas import JobCreate, JobDetail, JobPublic, MetricPoint
from services.trainer_client import TrainerClient

router = APIRouter(prefix="/projects/{project_id}/jobs", tags=["jobs"])


@router.get("")
def list_jobs(project_id: int, session: SessionDep, user: CurrentUser) -> list[JobPublic]:
    require_role(session, user=user, project_id=project_id, minimum=Role.viewer)
    return [JobPublic.of(j) for j in jobs.list_jobs(session, project_id=project_id)]


@router.post("", status_code=201)
async def create_job(project_id: int, body: JobCreate, session: SessionDep, user: CurrentUser) -> JobPublic:
    require_role(session, user=user, project_id=project_id, minimum=Role.member)
    job = jobs.create_job(session, project_id=project_id, user=user, **body.model_dump())
    session.commit()
    await enqueue_dispatch(job.id, job.attempt)
    return JobPublic.of(job)


@router.get("/{job_id}")
def get_job(project_id: int, job_id: int, session: SessionDep, user: CurrentUser) -> JobDetail:
    require_role(session, user=user, project_id=project_id, minimum=Role.viewer)
    job = jobs.get_job(session, project_id=project_id, job_id=job_id)
    points = [MetricPoint.of(m) for m in jobs.metrics_for(session, job_id=job.id)]
    return JobDetail(**JobPublic.of(job).model_dump(), metrics=points)


@router.post("/{job_id}/cancel")
async def cancel_job(project_id: int, job_id: int, session: SessionDep, user: CurrentUser) -> JobPublic:
    require_role(session, user=user, project_id=project_id, minimum=Role.member)
    job = jobs.get_job(session, project_id=project_id, job_id=job_id)
    state = JobState(job.state)
    if state in jobs.FINISHED:
        raise DomainError(f"Job {job_id} already {state.value}; nothing to cancel")
    if state in {JobState.queued, JobState.retrying}:
        jobs.transition(session, job, JobState.cancelled, reason=f"cancelled by {user.username}")
    else:
        # The trainer stops at the next batch and its final callback records `cancelled`.
        try:
            await TrainerClient.from_settings().cancel_job(job.id)
        except httpx.HTTPError as exc:
            raise DomainError(f"Could not reach the trainer to cancel job {job_id}: {exc}") from exc
    return JobPublic.of(job)
