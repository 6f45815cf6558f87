"""Read models and user actions shared by the REST API and the web UI's state classes.

Everything here takes the session explicitly and returns public shapes (services.domain.schemas);
ORM rows never leave `services/`. Callers check access with `services.domain.permissions.authorize`
before reading; `cancel_job` checks it itself.
"""

from __future__ import annotations

import httpx
from sqlmodel import Session, col, select

from services.domain import audit, jobs
from services.domain.datasets import list_datasets
from services.domain.models import Dataset, DatasetVersion, Job, JobState, Membership, User
from services.domain.permissions import Action, authorize
from services.domain.projects import projects_for
from services.domain.schemas import (
    DatasetVersionPublic,
    JobDetail,
    JobListItem,
    JobPublic,
    MetricPoint,
    ProjectPublic,
)
from services.errors import DomainError, NotFound
from services.infra.trainer_client import CircuitBreakerError, TrainerClient


def user_projects(session: Session, *, user: User) -> list[ProjectPublic]:
    return [ProjectPublic.of(project, role.value) for project, role in projects_for(session, user=user)]


def project_datasets(session: Session, *, project_id: int) -> list[DatasetVersionPublic]:
    """The latest version of each dataset of the project, newest dataset first."""
    return [DatasetVersionPublic.of(v, d.name) for d, v in list_datasets(session, project_id=project_id)]


def project_jobs(session: Session, *, project_id: int, limit: int = 200) -> list[JobPublic]:
    return [JobPublic.of(j) for j in jobs.list_jobs(session, project_id=project_id, limit=limit)]


def project_of_job(session: Session, *, job_id: int) -> int:
    """The project a job belongs to (for the role check). NotFound when there is no such job."""
    job = session.get(Job, job_id)
    if job is None:
        raise NotFound(f"Job {job_id} does not exist")
    return job.project_id


def job_detail(session: Session, *, project_id: int, job_id: int) -> JobDetail:
    job = jobs.get_job(session, project_id=project_id, job_id=job_id)
    points = [MetricPoint.of(m) for m in jobs.metrics_for(session, job_id=job.id)]
    public = JobPublic.of(job)
    if job.state in jobs.QUEUE_STATES:
        public.queue_position = jobs.queue_positions(session).get(job.id)
    return JobDetail(**public.model_dump(), metrics=points)


async def cancel_job(session: Session, *, user: User, project_id: int, job_id: int) -> JobPublic:
    """Cancel a job (same rules as POST /api/v1/projects/{p}/jobs/{j}/cancel).

    Members cancel the jobs they launched; admins and owners cancel anyone's (Action.job_cancel).
    Queued/retrying jobs are cancelled at once; dispatching/running ones are asked to stop
    through the trainer, whose final callback records `cancelled`. The caller commits.
    Raises NotFound, PermissionDenied, DomainError (finished, trainer unreachable).
    """
    authorize(session, user=user, project_id=project_id, action=Action.job_read)
    job = jobs.get_job(session, project_id=project_id, job_id=job_id)
    authorize(
        session,
        user=user,
        project_id=project_id,
        action=Action.job_cancel,
        owner_id=job.created_by,
        target=f"job:{job_id}",
    )
    state = JobState(job.state)
    if state in jobs.FINISHED:
        raise DomainError(f"Job {job_id} already {state.value}; nothing to cancel")
    if state in {JobState.queued, JobState.retrying}:
        jobs.transition(session, job, JobState.cancelled, reason=f"cancelled by {user.username}")
    else:
        try:
            await TrainerClient.from_settings().cancel_job(job.id)
        except (httpx.HTTPError, CircuitBreakerError) as exc:
            raise DomainError(f"Could not reach the trainer to cancel job {job_id}: {exc}") from exc
    if audit.current_context() is None:  # the REST middleware records its own requests
        audit.record(session, actor=user, action="job.cancel", target=f"job:{job_id}", project_id=project_id)
    return JobPublic.of(job)


# --- jobs list with filters and queue positions ---------------------------------------------------


def job_list(
    session: Session,
    *,
    user: User,
    project_id: int,
    states: list[str] | None = None,
    owner_id: int | None = None,
    dataset_version_ids: list[int] | None = None,
    search: str = "",
) -> list[JobListItem]:
    """Jobs of a project matching the filters, newest first, each with its owner's name and, for
    waiting jobs, its 1-based place in the trainer queue (shared by every project)."""
    authorize(session, user=user, project_id=project_id, action=Action.job_read)
    rows = jobs.filter_jobs(
        session,
        project_id=project_id,
        states=states,
        owner_id=owner_id,
        dataset_version_ids=dataset_version_ids,
        search=search,
    )
    positions = jobs.queue_positions(session) if any(j.state in jobs.QUEUE_STATES for j in rows) else {}
    owners = {
        u.id: u.username
        for u in session.exec(select(User).where(col(User.id).in_({j.created_by for j in rows}))).all()
    }
    return [
        JobListItem(
            **JobPublic.of(j).model_dump(exclude={"queue_position"}),
            owner=owners.get(j.created_by, "?"),
            owner_id=j.created_by,
            queue_position=positions.get(j.id),
        )
        for j in rows
    ]


def job_filter_options(session: Session, *, user: User, project_id: int) -> dict[str, list[dict[str, str]]]:
    """Owners (members and anyone who launched a job) and dataset versions, for the filter selects."""
    authorize(session, user=user, project_id=project_id, action=Action.job_read)
    owner_ids = set(session.exec(select(Job.created_by).where(Job.project_id == project_id)).all())
    owner_ids |= set(
        session.exec(select(Membership.user_id).where(Membership.project_id == project_id)).all()
    )
    owners = session.exec(select(User).where(col(User.id).in_(owner_ids)).order_by(User.username)).all()
    versions = project_dataset_versions(session, project_id=project_id)
    return {
        "owners": [{"value": str(u.id), "label": u.username} for u in owners],
        "datasets": [
            {"value": str(v.id), "label": f"{v.name} v{v.version}", "task": v.task} for v in versions
        ],
    }


def project_dataset_versions(session: Session, *, project_id: int) -> list[DatasetVersionPublic]:
    """Every version of every dataset of the project, newest first."""
    rows = session.exec(
        select(DatasetVersion, Dataset.name)
        .join(Dataset, Dataset.id == DatasetVersion.dataset_id)
        .where(Dataset.project_id == project_id)
        .order_by(col(DatasetVersion.id).desc())
    ).all()
    return [DatasetVersionPublic.of(v, name) for v, name in rows]
