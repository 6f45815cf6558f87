"""Jobs as users act on them: list, read, create, cancel, retry. One function per action, both channels.

Creating and retrying commit the job first and enqueue its dispatch only after the commit, so the
worker never picks up a job it cannot read. Cancelling a running job asks the trainer outside any
transaction. Raises NotFound, PermissionDenied, InvalidInput, Conflict (quota, finished job) and
DomainError (trainer unreachable).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
from sqlmodel import Session, col, select

from services.actions import notifications as notify
from services.actions.core import Actor, Audit, Operation, operation, record_outcome
from services.domain import audit, experiments, jobs, quotas, registry, tokens
from services.domain.datasets import list_datasets
from services.domain.models import Dataset, DatasetVersion, Job, JobState, Membership, User
from services.domain.permissions import Action
from services.domain.projects import projects_for
from services.domain.schemas import (
    DatasetVersionPublic,
    JobCreate,
    JobDetail,
    JobListItem,
    JobPublic,
    ProjectPublic,
)
from services.errors import DomainError, NotFound
from services.infra import live, logs
from services.infra.queue import enqueue_dispatch
from services.infra.trainer_client import CircuitBreakerError, TrainerClient


def _job_in(session: Session, *, project_id: int | None, job_id: int) -> Job:
    """The job, checked to be in `project_id` when the caller names one (the REST path does)."""
    job = session.get(Job, job_id)
    if job is None or (project_id is not None and job.project_id != project_id):
        raise NotFound(f"Job {job_id} does not exist")
    return job


def _detail(session: Session, job: Job) -> JobDetail:
    assert job.id is not None
    queue_position = jobs.queue_positions(session).get(job.id) if job.state in jobs.QUEUE_STATES else None
    # Validated once from plain values (a JobPublic and MetricPoints first, dumped and validated
    # again, cost twice the CPU; the job page asks for this every second or two).
    return JobDetail.model_validate(
        {
            **JobPublic.public_fields(job.model_dump(warnings=False)),
            "queue_position": queue_position,
            "metrics": jobs.metric_points(session, job_id=job.id),
            "tags": experiments.tags_of(session, [job.id]).get(job.id, []),
        }
    )


# --- reads ----------------------------------------------------------------------------------------


def project_jobs(actor: Actor, *, project_id: int, limit: int = 200) -> list[JobPublic]:
    """The project's newest jobs (the projects page's table)."""
    with operation(actor, "job.list", record=Audit.refusals) as op:
        op.authorize(Action.job_read, project_id=project_id)
        return [JobPublic.of(j) for j in jobs.list_jobs(op.session, project_id=project_id, limit=limit)]


def job_detail(actor: Actor, *, project_id: int, job_id: int) -> JobDetail:
    with operation(actor, "job.read", target=f"job:{job_id}", record=Audit.refusals) as op:
        op.authorize(Action.job_read, project_id=project_id)
        return _detail(op.session, _job_in(op.session, project_id=project_id, job_id=job_id))


@dataclass
class JobView:
    """What the job page shows: the job with its metrics, the viewer's role, and whether it is theirs."""

    detail: JobDetail
    role: str
    own: bool


def job_view(actor: Actor, *, job_id: int) -> JobView:
    """The job page's read: the project comes from the job. An outsider gets the same NotFound as
    for a job that does not exist, so existence is not leaked."""
    with operation(actor, "job.read", target=f"job:{job_id}", record=Audit.refusals) as op:
        job = _job_in(op.session, project_id=None, job_id=job_id)
        role = _read_role(op, job_id=job_id, project_id=job.project_id)
        return JobView(detail=_detail(op.session, job), role=role, own=job.created_by == op.me.id)


def _read_role(op: Operation, *, job_id: int, project_id: int) -> str:
    """The viewer's role on the job's page; an outsider gets the NotFound of a missing job."""
    try:
        return op.authorize(Action.job_read, project_id=project_id).value
    except NotFound as exc:
        raise NotFound(f"Job {job_id} does not exist", reason=exc.reason) from exc


@dataclass(frozen=True)
class JobAccess:
    """What one viewer may do on a job's page: their role in its project, and whether it is theirs."""

    role: str
    own: bool


# A viewer's access to a job, remembered: 50 viewers of a job were checked 50 times per epoch,
# three queries each, the largest cost of the web process while they watched. Kept only while
# this process hears credential notices, and only under the credentials generation it was decided
# in: a change of a membership, project, user or credential, on any process, empties it at once
# (services.domain.tokens). The time bound only limits what a notice lost in a reconnect could
# leave, like the page's periodic re-read. Refusals are never kept (and are audited each time).
ACCESS_TTL_S = 15.0
_ACCESS_LIMIT = 10_000
_accesses: dict[tuple[int | None, int], tuple[int, float, JobAccess]] = {}


def job_access(actor: Actor, *, job_id: int) -> JobAccess:
    """The job page's check alone, without reading the job's metrics: when many viewers watch one
    job, one of them reads the job for all (state.shared_reads) and each of the others is checked
    here. Refused the same way as `job_view` (NotFound for outsiders and missing jobs)."""
    key = (actor.user_id, job_id)
    generation = tokens.credentials_generation()
    hit = _accesses.get(key)
    if hit is not None and hit[0] == generation and hit[1] > time.monotonic():
        return hit[2]
    listening = tokens.credential_notices().connected.is_set()
    access = _checked_job_access(actor, job_id=job_id)
    if listening and generation == tokens.credentials_generation():
        if len(_accesses) >= _ACCESS_LIMIT:
            _accesses.clear()
        _accesses[key] = (generation, time.monotonic() + ACCESS_TTL_S, access)
    return access


def _checked_job_access(actor: Actor, *, job_id: int) -> JobAccess:
    with operation(actor, "job.read", target=f"job:{job_id}", record=Audit.refusals) as op:
        # Two columns, not the row: the row's metrics, logs and artifacts are what the shared
        # read is for, and this runs once per viewer per notice.
        found = op.session.exec(select(Job.project_id, Job.created_by).where(Job.id == job_id)).first()
        if found is None:
            raise NotFound(f"Job {job_id} does not exist")
        project_id, created_by = found
        role = _read_role(op, job_id=job_id, project_id=project_id)
        return JobAccess(role=role, own=created_by == op.me.id)


def job_list(
    actor: Actor,
    *,
    project_id: int,
    states: list[str] | None = None,
    owner_id: int | None = None,
    dataset_version_ids: list[int] | None = None,
    search: str = "",
    light: bool = False,
    kept: bool = False,
) -> list[JobListItem]:
    """Jobs of a project matching the filters, newest first, each with its owner's name and, for
    waiting jobs, its 1-based place in the trainer queue (shared by every project).

    `light`: without each job's `log_tail` and `artifacts` (empty), which a list page never shows
    and which made up most of the list's bytes and decoding; the job's detail has them.
    `kept`: the list may come from `_job_lists` (see there): for REST readers. A page woken by a
    notice reads afresh; it may hear the notice before this process's count of it moves."""
    with operation(actor, "job.list", record=Audit.refusals) as op:
        op.authorize(Action.job_read, project_id=project_id)
        # Taken before the read: a change announced after it makes this read's entry stale.
        version = live.project_version(project_id) if kept else None
        key = (project_id, tuple(states or ()), owner_id, tuple(dataset_version_ids or ()), search, light)
        found = _job_lists.get(key)
        if version is not None and found is not None and found[0] == version and time.monotonic() < found[1]:
            return list(found[2])
        session = op.session
        rows = jobs.filter_jobs(
            session,
            project_id=project_id,
            states=states,
            owner_id=owner_id,
            dataset_version_ids=dataset_version_ids,
            search=search,
            light=light,
        )
        waiting = any(j["state"] in jobs.QUEUE_STATES for j in rows)
        positions = jobs.queue_positions(session) if waiting else {}
        owners = dict(
            session.exec(
                select(User.id, User.username).where(col(User.id).in_({j["created_by"] for j in rows}))
            ).all()
        )
        # Validated once, straight from each row's columns (a Job object, then a JobPublic dumped
        # and validated again, cost twice the CPU).
        items = [
            JobListItem.model_validate(
                {
                    **JobPublic.public_fields(j),
                    "owner": owners.get(j["created_by"], "?"),
                    "owner_id": j["created_by"],
                    "queue_position": positions.get(j["id"]),
                }
            )
            for j in rows
        ]
        # Queue places move with other projects' jobs, which this project's version does not see.
        if version is not None and not waiting:
            if sum(len(entry[2]) for entry in _job_lists.values()) + len(items) > _JOBS_KEPT:
                _job_lists.clear()  # bounded memory: a job with its log tail can be 25 kB
            _job_lists[key] = (version, time.monotonic() + JOB_LIST_TTL_S, items)
        return list(items)


# The REST jobs list, kept per project and filters while nothing of the project changed. It was
# 38 % of the web process's CPU in bench/route_cost.py's mix of 200 browsing users, and most of
# the time no job of the project changes between two reads. Every commit that touches a job
# announces its project (services.domain.live); the kept list is used only while this process
# hears those notices and none arrived (`live.project_version`), and for at most `JOB_LIST_TTL_S`
# in case a write reached the database without an announcement. Authorization is checked on every
# call. At most `_JOBS_KEPT` jobs are kept over all lists.
JOB_LIST_TTL_S = 2.0
_JOBS_KEPT = 5_000
_job_lists: dict[tuple[Any, ...], tuple[tuple[int, int], float, list[JobListItem]]] = {}


def _dataset_versions(session: Session, *, project_id: int) -> list[DatasetVersionPublic]:
    """Every version of every dataset of the project, newest first."""
    rows = session.exec(
        select(DatasetVersion, Dataset.name)
        .join(Dataset, col(Dataset.id) == col(DatasetVersion.dataset_id))
        .where(Dataset.project_id == project_id)
        .order_by(col(DatasetVersion.id).desc())
    ).all()
    return [DatasetVersionPublic.of(v, name) for v, name in rows]


def job_filter_options(actor: Actor, *, project_id: int) -> dict[str, list[dict[str, str]]]:
    """Owners (members and anyone who launched a job) and dataset versions, for the filter selects."""
    with operation(actor, "job.list", record=Audit.refusals) as op:
        op.authorize(Action.job_read, project_id=project_id)
        session = op.session
        owner_ids = set(session.exec(select(Job.created_by).where(Job.project_id == project_id)).all())
        owner_ids |= set(
            session.exec(select(Membership.user_id).where(Membership.project_id == project_id)).all()
        )
        owners = session.exec(
            select(User).where(col(User.id).in_(owner_ids)).order_by(col(User.username))
        ).all()
        versions = _dataset_versions(session, project_id=project_id)
    return {
        "owners": [{"value": str(u.id), "label": u.username} for u in owners],
        "datasets": [
            {"value": str(v.id), "label": f"{v.name} v{v.version}", "task": v.task} for v in versions
        ],
    }


@dataclass
class TrainContext:
    """What the training form needs: the viewer's role and the versions they may train on."""

    role: str
    project_name: str
    versions: list[DatasetVersionPublic] = field(default_factory=list)


def train_context(actor: Actor, *, project_id: int) -> TrainContext:
    from services.domain.models import Project

    with operation(actor, "job.list", record=Audit.refusals) as op:
        role = op.authorize(Action.job_read, project_id=project_id)
        project = op.session.get(Project, project_id)
        return TrainContext(
            role=role.value,
            project_name=project.name if project else "",
            versions=_dataset_versions(op.session, project_id=project_id),
        )


# --- actions that change something ------------------------------------------------------------------


@dataclass
class Submitted:
    """A job saved and (unless Redis was unreachable) the dispatcher woken; the dispatcher reads the
    queue from the database, so `queued=False` only means it starts a few seconds later."""

    job: JobPublic
    queued: bool


def _create(actor: Actor, project_id: int, request: JobCreate) -> JobPublic:
    with operation(actor, "job.create", target=f"project:{project_id}") as op:
        op.authorize(Action.job_create, project_id=project_id)
        fields = request.model_dump(exclude={"start_from"})
        start = registry.start_point(op.session, project_id=project_id, start_from=request.start_from)
        if start is not None:
            fields.update(framework=start.framework, task=start.task, model=start.architecture)
        job = jobs.new_job(op.session, project_id=project_id, user=op.me, **fields)
        if start is not None:
            job.init_weights, job.start_from = start.init_weights, start.label
        quotas.check_gpu_quota(op.session, project_id=project_id, gpus=jobs.resources_of(job).gpus)
        quotas.check_room_to_queue(op.session, project_id=project_id)
        op.session.add(job)
        op.session.flush()
        op.target = f"job:{job.id}"
        logs.bind(job_id=job.id, attempt=job.attempt)
        return JobPublic.of(job)


async def create(actor: Actor, *, project_id: int, request: JobCreate) -> Submitted:
    try:
        job = await asyncio.to_thread(_create, actor, project_id, request)
    except quotas.QuotaExceeded as exc:
        await notify.quota_reached(project_id=project_id, message=exc.message, user_id=actor.user_id)
        raise
    return Submitted(job=job, queued=await enqueue_dispatch(job.id, job.attempt))


def _retry(actor: Actor, project_id: int | None, job_id: int, resume: bool) -> JobPublic:
    with operation(actor, "job.retry", target=f"job:{job_id}") as op:
        job = _job_in(op.session, project_id=project_id, job_id=job_id)
        op.authorize(Action.job_retry, project_id=job.project_id, owner_id=job.created_by)
        jobs.check_retryable(job)
        quotas.check_gpu_quota(op.session, project_id=job.project_id, gpus=jobs.resources_of(job).gpus)
        quotas.check_room_to_queue(op.session, project_id=job.project_id)
        new = jobs.retry(op.session, job, op.me, resume=resume)
        op.detail = f"new job:{new.id}" + (" (resumed)" if new.attempt > 1 else "")
        return JobPublic.of(new)


async def retry(
    actor: Actor, *, job_id: int, project_id: int | None = None, resume: bool = True
) -> Submitted:
    """A failed or cancelled job again, as a new job; `resume` continues from its last checkpoint."""
    job = await asyncio.to_thread(_retry, actor, project_id, job_id, resume)
    return Submitted(job=job, queued=await enqueue_dispatch(job.id, job.attempt))


def _cancel(actor: Actor, project_id: int | None, job_id: int) -> tuple[JobPublic, bool, list[int]]:
    """Cancel a waiting job at once, or say that the trainer must be asked (True); the
    notification events the cancel wrote, to send after the commit."""
    with operation(actor, "job.cancel", target=f"job:{job_id}", record=Audit.refusals) as op:
        job = _job_in(op.session, project_id=project_id, job_id=job_id)
        op.authorize(Action.job_cancel, project_id=job.project_id, owner_id=job.created_by)
        outcome = jobs.cancel(op.session, job, reason=f"cancelled by {op.me.username}")
        if outcome == "finished":
            raise DomainError(f"Job {job_id} already {JobState(job.state).value}; nothing to cancel")
        ask_trainer = outcome == "ask_trainer"
        op.project_id = job.project_id
        return JobPublic.of(job), ask_trainer, notify.pending_events(op.session)


async def cancel(actor: Actor, *, job_id: int, project_id: int | None = None) -> JobPublic:
    """Queued/retrying jobs are cancelled at once; dispatching/running ones are asked to stop through
    the trainer (after the transaction), whose final callback records `cancelled`.

    Members cancel the jobs they launched; admins and owners cancel anyone's (Action.job_cancel).
    """
    job, ask_trainer, events = await asyncio.to_thread(_cancel, actor, project_id, job_id)
    await notify.send_after_commit(events)
    outcome: dict[str, Any] = {"result": audit.ALLOWED, "detail": ""}
    if ask_trainer:
        outcome["detail"] = "asked the trainer to stop"
        try:
            await TrainerClient.from_settings().cancel_job(job_id)
        except (httpx.HTTPError, CircuitBreakerError) as exc:
            message = f"Could not reach the trainer to cancel job {job_id}: {exc}"
            outcome = {"result": audit.FAILED, "detail": message}
    await asyncio.to_thread(
        record_outcome, actor, "job.cancel", target=f"job:{job_id}", project_id=job.project_id, **outcome
    )
    if outcome["result"] == audit.FAILED:
        raise DomainError(outcome["detail"])
    return job


@dataclass
class ProjectOverview:
    """The projects page: the user's projects and, for the selected one, role, datasets and jobs."""

    projects: list[ProjectPublic] = field(default_factory=list)
    role: str = ""
    datasets: list[DatasetVersionPublic] = field(default_factory=list)
    jobs: list[JobPublic] = field(default_factory=list)


def project_overview(actor: Actor, *, project_id: int | None) -> ProjectOverview:
    """One read for the projects page; `project_id=None` lists the projects only."""
    with operation(actor, "project.read", record=Audit.refusals) as op:
        session = op.session
        found = ProjectOverview(
            projects=[ProjectPublic.of(p, role.value) for p, role in projects_for(session, user=op.me)]
        )
        if project_id is None:
            return found
        found.role = op.authorize(Action.project_read, project_id=project_id).value
        found.datasets = [
            DatasetVersionPublic.of(v, d.name) for d, v in list_datasets(session, project_id=project_id)
        ]
        found.jobs = [JobPublic.of(j) for j in jobs.list_jobs(session, project_id=project_id)]
        return found
