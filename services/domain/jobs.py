"""Training jobs: the lifecycle state machine, creation, and applying trainer callbacks.

The database is the single source of truth for job state. Every change goes through
`transition`, which refuses moves the lifecycle does not allow, so a late or duplicated
callback can never move a finished job.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import datetime
from typing import Any

import sqlalchemy
from sqlalchemy import insert, update
from sqlmodel import Session, col, func, select

from services.domain import catalog, datasets, fleet, notifications
from services.domain.models import Job, JobEvent, JobMetric, JobState, Project, User, id_of, utcnow
from services.errors import Conflict, InvalidInput, NotFound
from services.infra import storage
from services.infra.signing import new_secret
from services.infra.trainer_protocol import BatchInference

S = JobState
ALLOWED: dict[JobState, frozenset[JobState]] = {
    S.queued: frozenset({S.dispatching, S.cancelled}),
    S.dispatching: frozenset({S.running, S.queued, S.retrying, S.failed, S.cancelled}),
    S.retrying: frozenset({S.dispatching, S.failed, S.cancelled}),
    S.running: frozenset({S.succeeded, S.failed, S.cancelled, S.retrying}),
    S.succeeded: frozenset(),
    S.failed: frozenset(),
    S.cancelled: frozenset(),
}
FINISHED = frozenset({S.succeeded, S.failed, S.cancelled})
ACTIVE = frozenset({S.dispatching, S.running})
# Waiting for the fleet: in the one queue the dispatcher drains (`waiting_in_order`).
QUEUE_STATES = (S.queued, S.retrying)

# What may be trained (frameworks, tasks, models, hyperparameters) comes from the trainer's
# catalogue (services.domain.catalog); only the device choice is the backend's own.
DEVICES = catalog.DEVICES
# Per split, how many images get their predictions stored at the end of a job (a job option).
DEFAULT_PREDICTIONS_MAX_IMAGES = 500
MAX_PREDICTIONS_IMAGES = 10_000


class InvalidTransition(Conflict):
    """The lifecycle does not allow this move (e.g. anything out of a finished state)."""


class StateChanged(Conflict):
    """Another process moved the job since this one read it (the dispatcher claiming a job
    while a user cancels it): nothing was changed; re-read the job and decide again."""


def can_transition(current: JobState, new: JobState) -> bool:
    return new in ALLOWED[current]


def _compare_and_set(
    session: Session, job: Job, *, states: tuple[JobState, ...], attempt: int | None = None, **values: Any
) -> None:
    """Write `values` to the job's row only while it is in one of `states` (and at `attempt`);
    `StateChanged` when another process moved it since this one read it. The row stays locked
    until commit."""
    where = [col(Job.id) == job.id, col(Job.state).in_([s.value for s in states])]
    if attempt is not None:
        where.append(col(Job.attempt) == attempt)
    written = session.execute(
        update(Job).where(*where).values(**values).execution_options(synchronize_session=False)
    )
    if written.rowcount != 1:  # type: ignore[attr-defined]
        raise StateChanged(f"Job {job.id} changed meanwhile (it is no longer {states[0].value}); try again")


def transition(session: Session, job: Job, new: JobState, *, reason: str = "") -> bool:
    """Move a job to `new`. Same state again is a no-op (idempotent) and returns False."""
    current = JobState(job.state)
    if current == new:
        return False
    if not can_transition(current, new):
        raise InvalidTransition(f"Job {job.id} cannot go from {current.value} to {new.value}")
    if job.id is not None:
        # Compare-and-set in the database: two processes that both read `queued` (the dispatcher
        # handing the job over, a user cancelling it) must not both win, or a job cancelled in
        # the database trains on. Finding the row already in `new` is no conflict (the dispatcher
        # and a first callback both mark a job running). The row stays locked until commit.
        _compare_and_set(session, job, states=(current, new), state=new.value)
    job.state = new
    now = utcnow()
    if new == S.running and job.started_at is None:
        job.started_at = now
    if new in FINISHED:
        job.finished_at = now
    session.add(job)
    session.add(
        JobEvent(
            job_id=id_of(job),
            event_id=f"state-{current.value}-{new.value}-{job.attempt}-{now.timestamp()}",
            type="state",
            payload={"from": current.value, "to": new.value, "reason": reason},
        )
    )
    if new in FINISHED:
        # In this transaction (an outbox row): the caller hands it to the worker after the commit.
        notifications.job_finished(session, job, reason=reason)
    return True


def cancel(session: Session, job: Job, *, reason: str) -> str:
    """Cancel what has not reached training yet, and say what is left to do:
    "cancelled" (done), "ask_trainer" (the trainer must stop it) or "finished" (nothing to do).

    A waiting job is cancelled outright. A job being handed over (`dispatching`) is cancelled
    here as well and the trainer is asked: the dispatcher, finding it cancelled once the trainer
    accepts, asks the trainer again, so the attempt stops whichever side comes first. A running
    job is only asked to stop; its final callback (with its checkpoint) records `cancelled`.
    When the dispatcher moves the job at the same moment, decide again on what it is now.
    """
    try:
        return _cancel_once(session, job, reason)
    except StateChanged:
        session.refresh(job)
        return _cancel_once(session, job, reason)


def _cancel_once(session: Session, job: Job, reason: str) -> str:
    state = JobState(job.state)
    if state in FINISHED:
        return "finished"
    if state in QUEUE_STATES:
        transition(session, job, S.cancelled, reason=reason)
        return "cancelled"
    if state == S.dispatching:
        transition(session, job, S.cancelled, reason=reason + " during the hand-over")
    return "ask_trainer"


def validate_hyperparameters(
    values: dict[str, Any],
    *,
    framework: str = "ultralytics",
    task: str = "detect",
    plugins: catalog.Catalog | None = None,
) -> dict[str, Any]:
    """Every hyperparameter the trainer declares for framework/task, with `values` or defaults.

    Raises InvalidInput (unknown name, wrong type, out of range: the message names the field),
    catalog.TrainerUnavailable when no catalogue can be had.
    """
    plugins = plugins or catalog.get_catalog()
    return catalog.validate_hyperparameters(plugins.hyperparameters(framework, task), values)


def new_job(
    session: Session,
    *,
    project_id: int,
    user: User,
    dataset_version_id: int,
    name: str = "",
    framework: str = "ultralytics",
    task: str = "detect",
    model: str = "yolo11n.yaml",
    hyperparameters: dict[str, Any] | None = None,
    device: str = "auto",
    resources: fleet.Resources | dict[str, Any] | None = None,
    predictions_max_images: int = DEFAULT_PREDICTIONS_MAX_IMAGES,
) -> Job:
    """A validated queued job, not yet added to the session: the caller checks the project's quota
    between validation and the write, so input errors come first. See `create_job`.

    Raises InvalidInput (the message names the field) or NotFound. The project's quota is the
    caller's to check (services.actions.jobs checks it after the input, so input errors come first).
    """
    version = datasets.get_version(session, project_id=project_id, version_id=dataset_version_id)
    plugins = catalog.get_catalog()
    plugins.check_model(framework, task, model)
    if task != version.task:
        raise InvalidInput(
            f"dataset_version_id: dataset version {version.id} is for {version.task}, not {task}"
        )
    if device not in DEVICES:
        raise InvalidInput(f"device: unknown device {device!r}; allowed: {list(DEVICES)}")
    params = validate_hyperparameters(hyperparameters or {}, framework=framework, task=task, plugins=plugins)
    asks = fleet.parse_resources(resources)
    if not 0 <= predictions_max_images <= MAX_PREDICTIONS_IMAGES:
        raise InvalidInput(
            f"predictions_max_images: {predictions_max_images} is out of range; "
            f"use 0 (store none) to {MAX_PREDICTIONS_IMAGES}"
        )
    job = Job(
        project_id=project_id,
        dataset_version_id=id_of(version),
        created_by=id_of(user),
        name=(name.strip() or f"{model.removesuffix('.yaml')} on dataset v{version.version}")[:120],
        framework=framework,
        task=task,
        model=model,
        hyperparameters=params,
        device=device,
        resources=asks.model_dump(exclude_defaults=True),
        total_epochs=params.get("epochs"),
        callback_secret=new_secret(),
        predictions_max_images=predictions_max_images,
    )
    return job


def create_job(session: Session, *, project_id: int, user: User, **request: Any) -> Job:
    """Validate and write a queued job (no quota check). The caller enqueues it after commit."""
    job = new_job(session, project_id=project_id, user=user, **request)
    session.add(job)
    session.flush()
    return job


def resources_of(job: Job) -> fleet.Resources:
    """What a stored job asks for (`{}`, as jobs from before v1.4 have: one CPU slot)."""
    return fleet.Resources.model_validate(job.resources or {})


def get_job(session: Session, *, project_id: int, job_id: int) -> Job:
    job = session.get(Job, job_id)
    if job is None or job.project_id != project_id:
        raise NotFound(f"Job {job_id} does not exist in this project")
    return job


def list_jobs(session: Session, *, project_id: int, limit: int = 200) -> list[Job]:
    return list(
        session.exec(
            select(Job).where(Job.project_id == project_id).order_by(col(Job.id).desc()).limit(limit)
        ).all()
    )


def metrics_for(session: Session, *, job_id: int) -> list[JobMetric]:
    return list(
        session.exec(select(JobMetric).where(JobMetric.job_id == job_id).order_by(col(JobMetric.epoch)))
    )


def metric_points(session: Session, *, job_id: int) -> list[dict[str, Any]]:
    """Each epoch's metrics as `{"epoch", "metrics"}`, for reads that only show them (the job
    page polls this): no ORM object per epoch."""
    rows = session.exec(
        select(JobMetric.epoch, JobMetric.metrics)
        .where(JobMetric.job_id == job_id)
        .order_by(col(JobMetric.epoch))
    )
    return [{"epoch": epoch, "metrics": metrics} for epoch, metrics in rows]


def last_checkpoint_uri(job: Job) -> str:
    return storage.uri(storage.job_prefix(job.project_id, id_of(job)) + "checkpoints/last.pt")


def _in_queue_order(*columns: Any) -> Any:
    """`columns` of every waiting job (`queued`, `retrying`) in dispatch order: the project's
    priority (higher first), then submission time; a retrying job keeps its original place."""
    return (
        select(*columns)
        .join(Project, col(Project.id) == col(Job.project_id))
        .where(col(Job.state).in_(QUEUE_STATES))
        .order_by(col(Project.priority).desc(), col(Job.created_at), col(Job.id))
    )


def waiting_queue(session: Session) -> list[tuple[fleet.WaitingJob, str | None]]:
    """The queue the dispatcher drains, with each job's recorded `waiting_for`; only the columns
    it needs, since it reads this once a second while jobs wait."""
    rows = session.exec(_in_queue_order(Job.id, Job.project_id, Job.resources, Job.waiting_for)).all()
    return [
        (fleet.WaitingJob(job_id, project_id, fleet.Resources.model_validate(resources or {})), waiting_for)
        for job_id, project_id, resources, waiting_for in rows
    ]


def silent_jobs(session: Session, *, silent_since: datetime) -> list[Job]:
    """Jobs a trainer should be reporting on but that have not been heard from since then."""
    heard = func.coalesce(Job.last_heartbeat_at, Job.started_at, Job.created_at)
    return list(session.exec(select(Job).where(col(Job.state).in_(ACTIVE), heard < silent_since)).all())


def retry_or_fail(session: Session, job: Job, *, reason: str, max_attempts: int) -> bool:
    """A transient loss (trainer gone): a new attempt that resumes from the last checkpoint,
    or, with the attempt budget spent, `failed` as transient-exhausted. True if retrying."""
    if job.attempt >= max_attempts:
        job.error_kind = "transient"
        job.error_message = f"Gave up after {job.attempt} attempt(s): {reason}"
        transition(session, job, S.failed, reason=reason)
        return False
    transition(session, job, S.retrying, reason=reason)
    job.attempt += 1
    job.last_heartbeat_at = None
    session.add(job)
    return True


def data_uri(session: Session, job: Job) -> str:
    """The s3:// URI of the data the job runs on: its dataset version's, or for a batch run
    without one (uploaded weights over a zip), the zip's. InvalidInput or NotFound when there
    is none, so nothing is ever built from a missing version."""
    if job.dataset_version_id is None:
        images = job.inference.get("images_uri") if job.kind == "batch_inference" else None
        if not images:
            raise InvalidInput(f"job {job.id} has neither a dataset version nor a zip of images")
        return str(images)
    return datasets.get_version(session, project_id=job.project_id, version_id=job.dataset_version_id).uri


def dispatch_spec(
    job: Job,
    *,
    dataset_uri: str,
    callback_url: str,
    heartbeat_s: float,
    resume_from_uri: str | None = None,
    mlflow_parent_run_id: str | None = None,
) -> dict[str, Any]:
    """The trainer request (docs/trainer-protocol.md): only s3:// URIs for files."""
    spec: dict[str, Any] = {
        "job_id": str(job.id),
        "attempt": job.attempt,
        "framework": job.framework,
        "task": job.task,
        "model": job.model,
        "hyperparameters": job.hyperparameters,
        "device": job.device,
        "dataset_uri": dataset_uri,
        "output_uri": storage.uri(storage.job_prefix(job.project_id, id_of(job))),
        "resume_from_uri": resume_from_uri,
        "init_weights": job.init_weights,  # v1.5: fine-tuning; the trainer ignores it on resume
        "callback_url": callback_url,
        "callback_secret": job.callback_secret,
        "mlflow_experiment": f"project-{job.project_id}",
        "mlflow_parent_run_id": mlflow_parent_run_id,
        "heartbeat_interval_s": heartbeat_s,
        "resources": resources_of(job).model_dump(),
        "predictions_max_images": job.predictions_max_images,
        "kind": job.kind,
        "inference": _inference_spec(job),
    }
    if job.kind == "batch_inference" and job.inference.get("images_uri"):
        spec["dataset_uri"] = job.inference["images_uri"]  # a zip of images instead of a version
    return spec


def _inference_spec(job: Job) -> dict[str, Any] | None:
    """The v1.5 `inference` field: None for training, the trainer's request for batch inference."""
    if job.kind != "batch_inference":
        return None
    return BatchInference.model_validate(
        {k: v for k, v in job.inference.items() if k in BatchInference.model_fields}
    ).model_dump()


def apply_callbacks(session: Session, job: Job, events: list[dict[str, Any]]) -> list[str]:
    """Store verified trainer callbacks of one job, in order, in the caller's transaction.

    Returns 'applied', 'duplicate' or 'ignored' for each event. Duplicates (an event_id already
    stored, or twice in this list) change nothing; so does anything that arrives for a finished
    job or for an older attempt. An epoch already stored is replaced (a resumed attempt re-ran it).
    Raises `StateChanged` when another delivery moved the job after the caller read it (`_hold`).

    Set-based, so that a batch of N epochs (protocol v1.6) costs a few statements, not N times
    six: one query for the event ids already seen, one for the epochs already stored, one
    multi-row insert each of events and metric points, one update of the job. ORM objects cost
    about 0.2 ms each to build here, more than the database's work, so new rows go in as plain
    rows. A concurrent delivery of the same event makes the insert raise IntegrityError; the
    caller rolls back and applies the list again, when that event is then a duplicate.
    """
    ids = [str(event["event_id"]) for event in events]
    seen = set(
        session.exec(
            select(JobEvent.event_id).where(JobEvent.job_id == job.id, col(JobEvent.event_id).in_(ids))
        )
    )
    epochs = {int(e["epoch"]) for e in events if e["type"] == "epoch" and e.get("epoch") is not None}
    stored = (
        {
            metric.epoch: metric
            for metric in session.exec(
                select(JobMetric).where(JobMetric.job_id == job.id, col(JobMetric.epoch).in_(epochs))
            )
        }
        if epochs
        else {}
    )
    batch = _NewRows(job_id=id_of(job), stored=stored)
    results: list[str] = []
    read = (JobState(job.state), job.attempt)
    for event_id, event in zip(ids, events, strict=True):
        if event_id in seen:
            results.append("duplicate")
            continue
        seen.add(event_id)
        if JobState(job.state) in FINISHED or int(event.get("attempt", job.attempt)) != job.attempt:
            results.append("ignored")
            continue
        _apply_event(session, job, event, batch)
        batch.events.append(
            {"event_id": event_id, "type": event["type"], "payload": _slim(event), "created_at": utcnow()}
        )
        results.append("applied")
    if batch.events:
        if (JobState(job.state), job.attempt) == read:
            # No event moved the job (a move is itself a compare-and-set, in `transition`). Last,
            # so that the lock is not held while the events are worked out.
            _hold(session, job)
        batch.write(session, job)
    return results


def _hold(session: Session, job: Job) -> None:
    """Compare-and-set on the job's state and attempt as this transaction read them, before it
    writes its events; it takes the job's row (on SQLite, the write lock) until commit. Two
    deliveries read the job running at once, one its `finished` and one a heartbeat; without this
    the heartbeat, committed second, was stored after the end. Raises `StateChanged` when another
    callback moved the job meanwhile: re-read it and apply again."""
    _compare_and_set(
        session, job, states=(JobState(job.state),), attempt=job.attempt, last_heartbeat_at=utcnow()
    )


class _NewRows:
    """What a list of callbacks adds, written at the end in one statement per table: the job's
    plain fields (only the last value of each matters), callback events, and metric points."""

    def __init__(self, *, job_id: int, stored: dict[int, JobMetric]) -> None:
        self.job_id = job_id
        self.stored = stored  # epochs already in the database
        self.job: dict[str, Any] = {}
        self.events: list[dict[str, Any]] = []
        self.metrics: dict[int, dict[str, float]] = {}  # new epochs, by epoch

    def put_job_fields(self, job: Job) -> None:
        """Set the collected fields on the job (before a rule reads them, and at the end)."""
        for name, value in self.job.items():
            setattr(job, name, value)
        self.job.clear()

    def write(self, session: Session, job: Job) -> None:
        self.put_job_fields(job)
        session.add(job)
        session.flush()  # the job's row (and any state event) first, in the order they happened
        session.execute(insert(JobEvent), [{"job_id": self.job_id, **row} for row in self.events])
        if self.metrics:
            now = utcnow()
            session.execute(
                insert(JobMetric),
                [
                    {"job_id": self.job_id, "epoch": epoch, "metrics": metrics, "created_at": now}
                    for epoch, metrics in self.metrics.items()
                ],
            )


def _apply_event(session: Session, job: Job, event: dict[str, Any], rows: _NewRows) -> None:
    """One new event's changes to the job and its metric points."""
    kind = event["type"]
    fields = rows.job
    if event.get("mlflow_run_id"):
        fields["mlflow_run_id"] = str(event["mlflow_run_id"])
    if event.get("device"):
        fields["trainer_device"] = str(event["device"])
    if event.get("log_tail"):
        fields["log_tail"] = [str(line)[:500] for line in event["log_tail"]][-50:]
    if event.get("epoch") is not None:
        fields["current_epoch"] = int(event["epoch"])
    if event.get("checkpoint_epoch") is not None:
        fields["checkpoint_epoch"] = int(event["checkpoint_epoch"])
    if event.get("total_epochs"):
        fields["total_epochs"] = int(event["total_epochs"])
    fields["last_heartbeat_at"] = utcnow()
    if kind in {"started", "heartbeat", "epoch"} and JobState(job.state) == S.dispatching:
        rows.put_job_fields(job)
        transition(session, job, S.running, reason=f"trainer {kind}")
    if kind == "epoch":
        epoch = int(event["epoch"])
        metrics = {k: float(v) for k, v in (event.get("metrics") or {}).items() if _finite(v)}
        # An epoch reported again comes from a resumed attempt that re-ran it from an older
        # checkpoint: its values are the ones the model now carries, so they replace the point.
        if epoch in rows.stored:
            rows.stored[epoch].metrics = metrics
            session.add(rows.stored[epoch])
        else:
            rows.metrics[epoch] = metrics
        fields["final_metrics"] = metrics
    if kind == "finished":
        rows.put_job_fields(job)
        job.artifacts = {str(k): str(v) for k, v in (event.get("artifacts") or {}).items()}
        _store_best_metrics(job, event)
        error = event.get("error") or {}
        if event["state"] == S.failed.value and is_lost(error):
            # The attempt died under the job (killed process, dead node): resume it like a lost
            # trainer, from the last stored checkpoint, within the attempt budget.
            _apply_lost(session, job, str(error.get("message") or "attempt lost"))
        else:
            job.error_kind = error.get("kind")
            job.error_message = (error.get("message") or "")[:2000] or None
            transition(session, job, JobState(event["state"]), reason="trainer finished")


# Failures a new attempt may get past: the attempt was lost (v1.4: killed process, dead node,
# stopped Ray job) or hit trouble that passes (storage down past its budget, a trainer stopped by
# SIGTERM). Both resume from the last checkpoint, as docs/failure-handling.md promises.
RESUMABLE_KINDS = frozenset({"lost", "transient"})


def is_lost(error: dict[str, Any] | None) -> bool:
    """Whether a trainer's `failed` is a lost attempt to resume rather than a job that is wrong:
    kind `lost`, or `transient` (older trainers report a killed job process that way)."""
    return error is not None and str(error.get("kind")) in RESUMABLE_KINDS


def _apply_lost(session: Session, job: Job, message: str) -> None:
    from services.infra.settings import get_settings

    retry_or_fail(
        session,
        job,
        reason=f"attempt {job.attempt} lost: {message}"[:500],
        max_attempts=get_settings().max_attempts,
    )


def _store_best_metrics(job: Job, event: dict[str, Any]) -> None:
    """The figures of a finished attempt, each with the split it was measured on: validation
    (the trainer validates on `train` when the dataset has no `val` images) and test (v1.5)."""
    job.val_metrics = {k: float(v) for k, v in (event.get("metrics") or {}).items() if _finite(v)}
    job.test_metrics = {str(k): float(v) for k, v in (event.get("test_metrics") or {}).items() if _finite(v)}
    counts = (event.get("dataset") or {}).get("counts") or {}
    splits: dict[str, str] = {}
    if job.val_metrics:
        splits["val_metrics"] = "val" if counts.get("val", 1) else "train"
    if job.test_metrics:
        splits["test_metrics"] = "test"
    job.metric_splits = splits


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)


def _slim(event: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in event.items() if k not in {"log_tail"}}


# --- user actions on finished jobs, and the queue ------------------------------------------------

RETRYABLE = frozenset({S.failed, S.cancelled})


def check_retryable(job: Job) -> None:
    if JobState(job.state) not in RETRYABLE:
        raise Conflict(
            f"Job {job.id} is {JobState(job.state).value}; only failed or cancelled jobs can be retried"
        )


def retry(session: Session, job: Job, user: User, *, resume: bool = True) -> Job:
    """Start a failed or cancelled job again, as a new job with the same settings.

    `resume=True` continues from the old job's `checkpoints/last.pt` (copied under the new job's
    prefix, with the epochs already reported, and dispatched as attempt 2 so the worker passes the
    checkpoint to the trainer); `resume=False` (or no checkpoint) trains from scratch.
    The caller has authorized it and checks the project's quota; it commits and enqueues
    `(new.id, new.attempt)`. Raises Conflict when the job is not failed or cancelled.
    """
    check_retryable(job)
    checkpoint = last_checkpoint_uri(job)
    resume = resume and storage.exists(checkpoint)
    verb = "resumed" if resume else "retry"
    new = Job(
        project_id=job.project_id,
        dataset_version_id=job.dataset_version_id,
        created_by=id_of(user),
        name=f"{job.name} ({verb} of #{job.id})"[:120],
        framework=job.framework,
        task=job.task,
        model=job.model,
        hyperparameters=dict(job.hyperparameters),
        device=job.device,
        resources=dict(job.resources or {}),
        kind=job.kind,
        inference=dict(job.inference or {}),
        total_epochs=job.total_epochs,
        callback_secret=new_secret(),
        attempt=2 if resume else 1,
        init_weights=job.init_weights,
        start_from=job.start_from,
        predictions_max_images=job.predictions_max_images,
        # A retried trial stays in its sweep; when it finishes, the sweep counts its value.
        sweep_id=job.sweep_id,
        sweep_trial=job.sweep_trial,
    )
    session.add(new)
    session.flush()
    if resume:
        target = storage.job_prefix(new.project_id, id_of(new)) + "checkpoints/last.pt"
        storage.copy(checkpoint, target)
        for metric in metrics_for(session, job_id=id_of(job)):
            session.add(JobMetric(job_id=id_of(new), epoch=metric.epoch, metrics=dict(metric.metrics)))
        new.current_epoch = job.current_epoch
        new.checkpoint_epoch = job.checkpoint_epoch
        new.final_metrics = dict(job.final_metrics or {})
    session.add(
        JobEvent(
            job_id=id_of(new),
            event_id=f"{verb}-of-{job.id}",
            type="state",
            payload={"from": None, "to": "queued", "reason": f"{verb} of job {job.id} by {user.username}"},
        )
    )
    session.flush()
    return new


def queue_positions(session: Session) -> dict[int, int]:
    """1-based position of every waiting job in the one fleet queue (`waiting_in_order`)."""
    rows = session.exec(_in_queue_order(Job.id)).all()
    return {job_id: position for position, job_id in enumerate(rows, start=1)}


def queue_text(state: str, position: int | None, waiting_for: str | None) -> str:
    """What a waiting job shows: "Queued · position 3 · waiting for 1 GPU (A100)"."""
    if state not in {s.value for s in QUEUE_STATES}:
        return ""
    head = "Queued" if state == S.queued.value else "Waiting to retry"
    parts = [head]
    if position:
        parts.append(f"position {position}")
    parts.append(f"waiting for {waiting_for or fleet.THE_TRAINER}")
    return " · ".join(parts)


# What a light jobs list leaves out, and the empty value each comes back as.
LIST_HEAVY_COLUMNS: dict[str, Callable[[], Any]] = {"log_tail": list, "artifacts": dict}


def filter_jobs(
    session: Session,
    *,
    project_id: int,
    states: list[str] | None = None,
    owner_id: int | None = None,
    dataset_version_ids: list[int] | None = None,
    search: str = "",
    limit: int = 500,
    light: bool = False,
) -> list[dict[str, Any]]:
    """The matching jobs' columns, newest first, as plain dicts (the jobs list only reads them).

    Not `Job` objects: building and tracking an ORM object per row was half the CPU the jobs
    list cost the web process (bench/route_cost.py), more than the query itself.

    `light`: each job's log tail and artifact URIs are neither read nor decoded (up to 50 log lines
    of 500 characters a job: most of a list's bytes) and come back empty; a job's detail has them.
    """
    table = Job.__table__  # type: ignore[attr-defined]
    columns = [c for c in table.c if not (light and c.name in LIST_HEAVY_COLUMNS)]
    query = sqlalchemy.select(*columns).where(table.c.project_id == project_id)
    if states:
        query = query.where(table.c.state.in_(states))
    if owner_id:
        query = query.where(table.c.created_by == owner_id)
    if dataset_version_ids:
        query = query.where(table.c.dataset_version_id.in_(dataset_version_ids))
    if search.strip():
        query = query.where(table.c.name.icontains(search.strip()))
    result = session.execute(query.order_by(table.c.id.desc()).limit(limit))
    names = list(result.keys())
    left_out = {name: empty() for name, empty in LIST_HEAVY_COLUMNS.items()} if light else {}
    # Plain tuples zipped with the names once: a RowMapping per row builds its key view each time.
    return [{**dict(zip(names, row, strict=True)), **left_out} for row in result]
