from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from app.api.deps import CurrentUser, PathId, SessionDep
from services.actions import views
from services.domain import jobs
from services.domain.permissions import Action, authorize
from services.domain.schemas import JobCreate, JobDetail, JobListItem, JobPublic
from services.infra.queue import enqueue_dispatch

router = APIRouter(prefix="/projects/{project_id}/jobs", tags=["jobs"])


@router.get("")
def list_jobs(
    project_id: PathId,
    session: SessionDep,
    user: CurrentUser,
    state: Annotated[list[str] | None, Query(description="Only jobs in these states")] = None,
    owner_id: Annotated[int | None, Query(description="Only jobs this user launched")] = None,
    dataset_version_id: Annotated[list[int] | None, Query(description="Only jobs on these versions")] = None,
    search: Annotated[str, Query(max_length=120)] = "",
) -> list[JobListItem]:
    """Newest first; waiting jobs carry their `queue_position` (1 = next to be dispatched)."""
    authorize(session, user=user, project_id=project_id, action=Action.project_read)
    return views.job_list(
        session,
        user=user,
        project_id=project_id,
        states=state,
        owner_id=owner_id,
        dataset_version_ids=dataset_version_id,
        search=search,
    )


@router.post("", status_code=201)
async def create_job(
    project_id: PathId,
    body: JobCreate,
    session: SessionDep,
    user: CurrentUser,
) -> JobPublic:
    authorize(session, user=user, project_id=project_id, action=Action.dataset_write)
    job = jobs.create_job(session, project_id=project_id, user=user, **body.model_dump())
    session.commit()
    await enqueue_dispatch(job.id, job.attempt)
    return JobPublic.of(job)


@router.get("/{job_id}")
def get_job(project_id: PathId, job_id: PathId, session: SessionDep, user: CurrentUser) -> JobDetail:
    authorize(session, user=user, project_id=project_id, action=Action.project_read)
    return views.job_detail(session, project_id=project_id, job_id=job_id)


@router.post("/{job_id}/cancel")
async def cancel_job(project_id: PathId, job_id: PathId, session: SessionDep, user: CurrentUser) -> JobPublic:
    """Queued jobs stop at once; running ones stop at the trainer's next batch."""
    return await views.cancel_job(session, user=user, project_id=project_id, job_id=job_id)
