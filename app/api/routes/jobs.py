"""Jobs: list, read, create and cancel. Parse, call services.actions.jobs, shape."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from app.api.deps import CurrentActor, PathId
from services.actions import jobs
from services.domain.schemas import JobCreate, JobDetail, JobListItem, JobPublic

router = APIRouter(prefix="/projects/{project_id}/jobs", tags=["jobs"])


@router.get("")
def list_jobs(
    project_id: PathId,
    actor: CurrentActor,
    state: Annotated[list[str] | None, Query(description="Only jobs in these states")] = None,
    owner_id: Annotated[int | None, Query(description="Only jobs this user launched")] = None,
    dataset_version_id: Annotated[list[int] | None, Query(description="Only jobs on these versions")] = None,
    search: Annotated[str, Query(max_length=120)] = "",
    light: Annotated[
        bool,
        Query(
            description="Leave out each job's `log_tail` and `artifacts` (sent empty): a list "
            "rarely needs them, and a job's log tail alone can be 25 kB. The job's detail has them."
        ),
    ] = False,
) -> list[JobListItem]:
    """Newest first; waiting jobs carry their `queue_position` (1 = next to be dispatched)."""
    return jobs.job_list(
        actor,
        project_id=project_id,
        states=state,
        owner_id=owner_id,
        dataset_version_ids=dataset_version_id,
        search=search,
        light=light,
        kept=True,
    )


@router.post("", status_code=201)
async def create_job(project_id: PathId, body: JobCreate, actor: CurrentActor) -> JobPublic:
    return (await jobs.create(actor, project_id=project_id, request=body)).job


@router.get("/{job_id}")
def get_job(project_id: PathId, job_id: PathId, actor: CurrentActor) -> JobDetail:
    return jobs.job_detail(actor, project_id=project_id, job_id=job_id)


@router.post("/{job_id}/cancel")
async def cancel_job(project_id: PathId, job_id: PathId, actor: CurrentActor) -> JobPublic:
    """Queued jobs stop at once; running ones stop at the trainer's next batch."""
    return await jobs.cancel(actor, project_id=project_id, job_id=job_id)
