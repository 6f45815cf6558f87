"""Per-project job quotas: how many jobs may wait, and how many may run, at once.

Two limits on the project row, each None for "no limit":
- `max_queued_jobs` counts the project's *waiting* jobs: `queued` and `retrying` (a job whose
  trainer was lost and that waits for its next attempt), i.e. `services.domain.jobs.QUEUE_STATES`.
  It is checked when a user adds a job to the queue (`jobs.create_job`, `jobs.retry`); over it,
  the request is refused with `QuotaExceeded` (409) and nothing is written.
- `max_running_jobs` counts the project's jobs that hold (or are being given) the trainer:
  `dispatching` and `running`, i.e. `services.domain.jobs.ACTIVE`. New jobs are still accepted: the
  worker leaves a job `queued` while the project is at this limit (`room_to_run`) and tries it
  again later, so it starts when one of the project's jobs finishes.

Quotas govern admission only. Moves the platform makes itself on jobs already admitted (a lost
dispatch put back to `queued`, a silent job sent to `retrying`) are never refused, and lowering a
quota below what is queued or running now stops nothing: it only holds back new jobs.

Counts and the decision happen in the caller's transaction with the project row locked
(`SELECT ... FOR UPDATE` on PostgreSQL; SQLite serializes writers anyway), so two requests at
once cannot both take the last place.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlmodel import Session, col, func, select

from services.domain.jobs import ACTIVE, QUEUE_STATES
from services.domain.models import MAX_QUOTA, Job, JobState, Project
from services.domain.schemas import QuotasPublic
from services.errors import Conflict, InvalidInput, NotFound

WHAT_TO_DO = "Wait for a job to finish, cancel one, or ask a project admin to raise the quota."


class QuotaExceeded(Conflict):
    """The project is at one of its job quotas: a refusal the user can act on (409)."""


def _project(session: Session, project_id: int, *, lock: bool = False) -> Project | None:
    """The project row as the database has it now; `lock` holds it for the rest of the transaction
    where the database can (PostgreSQL), so concurrent checks of one project take turns."""
    statement = select(Project).where(Project.id == project_id)
    if lock:
        statement = statement.with_for_update()
    return session.exec(statement.execution_options(populate_existing=True)).first()


def _live_project(session: Session, project_id: int, *, lock: bool = False) -> Project:
    project = _project(session, project_id, lock=lock)
    if project is None or project.deleted_at is not None:
        raise NotFound(f"Project {project_id} does not exist")
    return project


def count_jobs(session: Session, *, project_id: int, states: Iterable[JobState]) -> int:
    """How many of the project's jobs are in one of `states` now."""
    return session.exec(
        select(func.count())
        .select_from(Job)
        .where(Job.project_id == project_id, col(Job.state).in_([s.value for s in states]))
    ).one()


def _public(session: Session, project: Project) -> QuotasPublic:
    assert project.id is not None
    return QuotasPublic(
        project_id=project.id,
        max_running_jobs=project.max_running_jobs,
        max_queued_jobs=project.max_queued_jobs,
        running=count_jobs(session, project_id=project.id, states=ACTIVE),
        queued=count_jobs(session, project_id=project.id, states=QUEUE_STATES),
    )


def get_quotas(session: Session, *, project_id: int) -> QuotasPublic:
    """The limits and the counts: any member may see them, they explain why a job waits or is refused."""
    return _public(session, _live_project(session, project_id))


def validate_quota(value: object, *, field: str) -> int | None:
    """A quota is None (no limit) or a whole number of jobs from 1 to MAX_QUOTA; else InvalidInput."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput(f"{field}: enter a whole number of jobs, or leave it empty for no limit")
    if not 1 <= value <= MAX_QUOTA:
        raise InvalidInput(
            f"{field}: must be from 1 to {MAX_QUOTA} jobs (got {value}); leave it empty for no limit"
        )
    return value


def set_quotas(
    session: Session,
    *,
    project_id: int,
    max_running_jobs: int | None,
    max_queued_jobs: int | None,
) -> tuple[QuotasPublic, str]:
    """Replace both limits; the new quotas and the change in words (old and new, for the audit log).

    The caller has authorized it (Action.quotas_manage). Raises NotFound, InvalidInput (the message
    names the field).
    """
    running = validate_quota(max_running_jobs, field="max_running_jobs")
    queued = validate_quota(max_queued_jobs, field="max_queued_jobs")
    project = _live_project(session, project_id, lock=True)
    before = f"{_text(project.max_running_jobs)}/{_text(project.max_queued_jobs)}"
    project.max_running_jobs, project.max_queued_jobs = running, queued
    session.add(project)
    session.flush()
    return _public(session, project), f"running/queued {before} -> {_text(running)}/{_text(queued)}"


def _text(limit: int | None) -> str:
    return "unlimited" if limit is None else str(limit)


def _jobs(count: int) -> str:
    return f"{count} job{'' if count == 1 else 's'}"


def check_room_to_queue(session: Session, *, project_id: int) -> None:
    """Refuse (QuotaExceeded) a new waiting job when the project already has `max_queued_jobs` waiting.

    Call it in the transaction that writes the job, before writing anything.
    """
    # Without a limit there is nothing to count, and no lock to take.
    if _live_project(session, project_id).max_queued_jobs is None:
        return
    limit = _live_project(session, project_id, lock=True).max_queued_jobs
    if limit is None:
        return
    waiting = count_jobs(session, project_id=project_id, states=QUEUE_STATES)
    if waiting < limit:
        return
    running = count_jobs(session, project_id=project_id, states=ACTIVE)
    raise QuotaExceeded(
        f"Job quota reached: this project allows at most {_jobs(limit)} waiting at once and has "
        f"{waiting} waiting now (queued or about to retry; {running} running), so this job was not "
        f"added. {WHAT_TO_DO}"
    )


def may_dispatch(*, state: JobState, max_running_jobs: int | None, running: int) -> bool:
    """The worker's decision: may a waiting job of a project with `running` active jobs start now?

    A job already `dispatching` (its dispatch is being repeated) holds its place and always may.
    """
    if state == JobState.dispatching:
        return True
    return max_running_jobs is None or running < max_running_jobs


def room_to_run(session: Session, job: Job) -> str:
    """Empty when the worker may dispatch `job` now; otherwise why it stays queued (for the log)."""
    project = _project(session, job.project_id)
    if project is None or project.max_running_jobs is None:
        return ""
    project = _project(session, job.project_id, lock=True)
    limit = project.max_running_jobs if project is not None else None
    if limit is None:
        return ""
    running = count_jobs(session, project_id=job.project_id, states=ACTIVE)
    if may_dispatch(state=JobState(job.state), max_running_jobs=limit, running=running):
        return ""
    return f"project {job.project_id} has {running} of at most {limit} jobs running"
