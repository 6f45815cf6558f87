"""Per-project job quotas: how many jobs may wait, how many may run, and how many GPUs they hold.

Three limits on the project row, each None for "no limit":
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
from typing import Any

from sqlmodel import Session, col, func, select

from services.domain import fleet
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
        max_gpus=project.max_gpus,
        running=count_jobs(session, project_id=project.id, states=ACTIVE),
        queued=count_jobs(session, project_id=project.id, states=QUEUE_STATES),
        gpus=gpus_in_use(session, project_id=project.id),
    )


def gpus_in_use(session: Session, *, project_id: int) -> int:
    """GPUs asked for by the project's dispatching and running jobs."""
    rows = session.exec(
        select(Job.resources).where(
            Job.project_id == project_id, col(Job.state).in_([s.value for s in ACTIVE])
        )
    ).all()
    return sum(int((r or {}).get("gpus", 0)) for r in rows)


def get_quotas(session: Session, *, project_id: int) -> QuotasPublic:
    """The limits and the counts: any member may see them, they explain why a job waits or is refused."""
    return _public(session, _live_project(session, project_id))


def validate_quota(value: object, *, field: str, unit: str = "jobs") -> int | None:
    """A quota is None (no limit) or a whole number from 1 to MAX_QUOTA; else InvalidInput."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput(f"{field}: enter a whole number of {unit}, or leave it empty for no limit")
    if not 1 <= value <= MAX_QUOTA:
        raise InvalidInput(
            f"{field}: must be from 1 to {MAX_QUOTA} {unit} (got {value}); leave it empty for no limit"
        )
    return value


# `set_quotas(max_gpus=UNCHANGED)`: callers that only know the job limits leave the GPU limit be.
UNCHANGED: Any = object()


def set_quotas(
    session: Session,
    *,
    project_id: int,
    max_running_jobs: int | None,
    max_queued_jobs: int | None,
    max_gpus: int | None = UNCHANGED,
) -> tuple[QuotasPublic, str]:
    """Replace the limits; the new quotas and the change in words (old and new, for the audit log).

    `max_gpus` left UNCHANGED keeps the project's GPU limit as it is.

    The caller has authorized it (Action.quotas_manage). Raises NotFound, InvalidInput (the message
    names the field).
    """
    running = validate_quota(max_running_jobs, field="max_running_jobs")
    queued = validate_quota(max_queued_jobs, field="max_queued_jobs")
    project = _live_project(session, project_id, lock=True)
    gpus = (
        project.max_gpus if max_gpus is UNCHANGED else validate_quota(max_gpus, field="max_gpus", unit="GPUs")
    )
    before = f"{_text(project.max_running_jobs)}/{_text(project.max_queued_jobs)}"
    if gpus != project.max_gpus:
        before += f", gpus {_text(project.max_gpus)} -> {_text(gpus)};"
    project.max_running_jobs, project.max_queued_jobs, project.max_gpus = running, queued, gpus
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


def check_gpu_quota(session: Session, *, project_id: int, gpus: int) -> None:
    """Refuse (QuotaExceeded) a job that asks for more GPUs than the project may ever hold at once:
    it would wait forever. Jobs within the limit are accepted and wait their turn in the queue."""
    if not gpus:
        return
    limit = _live_project(session, project_id).max_gpus
    if limit is not None and gpus > limit:
        raise QuotaExceeded(
            f"GPU quota: this project may hold at most {limit} GPU{'s' if limit != 1 else ''} at once, "
            f"and this job asks for {gpus}. Ask for fewer GPUs, or ask a project admin to raise the quota."
        )


def project_rooms(session: Session, project_ids: Iterable[int]) -> dict[int, fleet.ProjectRoom]:
    """For the dispatcher: each project's running limits and what its active jobs hold now.

    Read without locks: the dispatcher is the only one that moves jobs to `dispatching`.
    """
    ids = sorted(set(project_ids))
    if not ids:
        return {}
    rooms = {
        p.id: fleet.ProjectRoom(max_running_jobs=p.max_running_jobs, max_gpus=p.max_gpus)
        for p in session.exec(select(Project).where(col(Project.id).in_(ids))).all()
        if p.id is not None
    }
    active = session.exec(
        select(Job.project_id, Job.resources).where(
            col(Job.project_id).in_(ids), col(Job.state).in_([s.value for s in ACTIVE])
        )
    ).all()
    for project_id, resources in active:
        room = rooms.setdefault(project_id, fleet.ProjectRoom())
        room.running += 1
        room.gpus += int((resources or {}).get("gpus", 0))
    return rooms
