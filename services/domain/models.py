"""Database tables (SQLModel). The database holds metadata only; files live in object storage.

Rows stay inside `services/`: routes, state classes and arq tasks get the `*Public` shapes.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, overload

from sqlalchemy import JSON, Column, String, UniqueConstraint, true
from sqlmodel import Field, SQLModel


@overload
def aware(value: datetime) -> datetime: ...
@overload
def aware(value: None) -> None: ...
def aware(value: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; every time stored here is UTC."""
    if value is None:
        return None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


def id_of(row: SQLModel) -> int:
    """A stored row's primary key. Ids are None only before the first flush, which is a bug here."""
    found = getattr(row, "id", None)
    if not isinstance(found, int):
        raise ValueError(f"{type(row).__name__} has no id yet: flush it first")
    return found


class Role(StrEnum):
    owner = "owner"
    admin = "admin"
    member = "member"
    viewer = "viewer"


class JobState(StrEnum):
    queued = "queued"
    dispatching = "dispatching"
    running = "running"
    retrying = "retrying"
    succeeded = "succeeded"
    failed = "failed"
    cancelled = "cancelled"


class User(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    username: str = Field(index=True, unique=True, max_length=64)
    email: str | None = Field(default=None, max_length=254)
    password_hash: str
    avatar_name: str = Field(max_length=64)
    badge_color: str = Field(default="#2563eb", max_length=9)
    is_platform_admin: bool = False
    created_at: datetime = Field(default_factory=utcnow)
    # A deactivated account keeps its history (audit, jobs) but can no longer sign in.
    is_active: bool = Field(default=True, sa_column_kwargs={"server_default": true()})
    password_changed_at: datetime | None = None
    # Tell me when my own jobs finish (in-app list, and e-mail when SMTP is configured).
    notify_own_jobs: bool = Field(default=True, sa_column_kwargs={"server_default": true()})


class ApiToken(SQLModel, table=True):
    """Opaque bearer tokens; only their SHA-256 is stored, so a leaked table grants nothing."""

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="user.id", index=True)
    token_hash: str = Field(index=True, unique=True, max_length=64)
    expires_at: datetime
    created_at: datetime = Field(default_factory=utcnow)
    # "session": the web UI's sign-in; "personal": a named token a user made for scripts/CI.
    kind: str = Field(default="session", max_length=16, sa_column_kwargs={"server_default": "session"})
    name: str = Field(default="", max_length=120, sa_column_kwargs={"server_default": ""})
    last_used_at: datetime | None = None


# The largest job quota accepted; a project that needs more needs no limit (None).
MAX_QUOTA = 10_000


class Project(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=120)
    description: str = ""
    created_at: datetime = Field(default_factory=utcnow)
    # Deleted projects disappear for everyone (NotFound) while their jobs and audit trail stay.
    deleted_at: datetime | None = None
    # Job quotas (services.domain.quotas); None means no limit.
    max_running_jobs: int | None = None
    max_queued_jobs: int | None = None
    max_gpus: int | None = None  # GPUs the project's dispatching/running jobs may hold at once
    # Dispatch order across projects: higher first, then submission time (services.domain.fleet).
    priority: int = Field(default=0, sa_column_kwargs={"server_default": "0"})


class Membership(SQLModel, table=True):
    __table_args__ = (UniqueConstraint("project_id", "user_id"),)

    id: int | None = Field(default=None, primary_key=True)
    project_id: int = Field(foreign_key="project.id", index=True)
    user_id: int = Field(foreign_key="user.id", index=True)
    role: Role = Field(default=Role.member, sa_type=String(16))


class Dataset(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    project_id: int = Field(foreign_key="project.id", index=True)
    name: str = Field(max_length=120)
    created_by: int = Field(foreign_key="user.id")
    created_at: datetime = Field(default_factory=utcnow)


class DatasetVersion(SQLModel, table=True):
    """Immutable once written: jobs point at the exact version they trained on."""

    __table_args__ = (UniqueConstraint("dataset_id", "version"),)

    id: int | None = Field(default=None, primary_key=True)
    dataset_id: int = Field(foreign_key="dataset.id", index=True)
    version: int
    format: str = Field(max_length=32)
    task: str = Field(max_length=32)
    uri: str = Field(description="s3:// prefix holding manifest.json and raw/")
    classes: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    num_images: int = 0
    num_labels: int = 0
    split_counts: dict[str, int] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    size_bytes: int = 0
    created_at: datetime = Field(default_factory=utcnow)
    # How this version came to be: "upload" (split as received), a split method of `parent_version_id`
    # ("stratified", "random", "keep"), or "rename" (its classes renamed).
    parent_version_id: int | None = Field(default=None, foreign_key="datasetversion.id")
    split_method: str = Field(default="upload", max_length=16, sa_column_kwargs={"server_default": "upload"})
    split_seed: int | None = None
    split_ratios: dict[str, float] = Field(
        default_factory=dict, sa_column=Column(JSON, nullable=False, server_default="{}")
    )
    # split -> class name -> number of images holding that class
    class_counts: dict[str, dict[str, int]] = Field(
        default_factory=dict, sa_column=Column(JSON, nullable=False, server_default="{}")
    )
    num_warnings: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    note: str = Field(default="", max_length=500, sa_column_kwargs={"server_default": ""})


class Job(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    project_id: int = Field(foreign_key="project.id", index=True)
    # The data the job ran on; None only for a batch run over an uploaded zip of images from
    # uploaded weights (the zip is no dataset version, and such weights have no training data).
    dataset_version_id: int | None = Field(default=None, foreign_key="datasetversion.id")
    created_by: int = Field(foreign_key="user.id")
    name: str = Field(max_length=120)
    framework: str = Field(max_length=32)
    task: str = Field(max_length=32)
    model: str = Field(max_length=120)
    hyperparameters: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    device: str = Field(default="auto", max_length=16)
    # What the job asks the fleet for (services.domain.fleet.Resources); empty: one CPU slot.
    resources: dict[str, Any] = Field(
        default_factory=dict, sa_column=Column(JSON, nullable=False, server_default="{}")
    )
    state: JobState = Field(default=JobState.queued, sa_type=String(16), index=True)
    attempt: int = 1
    callback_secret: str = Field(max_length=128)
    mlflow_run_id: str | None = None
    current_epoch: int | None = None
    checkpoint_epoch: int | None = None  # newest epoch whose last.pt is in storage
    total_epochs: int | None = None
    trainer_device: str | None = None
    error_kind: str | None = None
    error_message: str | None = None
    artifacts: dict[str, str] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    log_tail: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(default_factory=utcnow)
    started_at: datetime | None = None
    finished_at: datetime | None = None
    last_heartbeat_at: datetime | None = None
    # Why a queued job is not running yet ("1 GPU (A100)", "the trainer"); set by the dispatcher.
    waiting_for: str | None = Field(default=None, max_length=200)
    # "train", or "batch_inference" (protocol v1.5): run `inference["model_uri"]` over the
    # dataset version, or over the zip at `inference["images_uri"]` (`source: "zip"`; the job's
    # dataset_version_id is then the version the model was trained on, its lineage, or None when
    # the weights were uploaded).
    kind: str = Field(default="train", max_length=24, sa_column_kwargs={"server_default": "train"})
    inference: dict[str, Any] = Field(
        default_factory=dict, sa_column=Column(JSON, nullable=False, server_default="{}")
    )
    # The newest epoch's metrics, kept on the row so the run list filters and sorts by them in SQL.
    final_metrics: dict[str, float] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    # Fine-tuning: the weights the job starts from (s3:// URI sent as `init_weights`), and what
    # the user chose ("models/shapes@champion (v2)", "job 12"); both None for a job from scratch.
    init_weights: str | None = Field(default=None, max_length=1024)
    start_from: str | None = Field(default=None, max_length=300)
    # The finished job's best.pt figures, each with the split it comes from: `val_metrics` on
    # the validation split (`metric_splits["val_metrics"]` says "train" when the
    # dataset had no val images and the trainer validated on train), `test_metrics` best.pt on
    # the test split, named `test/<metric>`.
    val_metrics: dict[str, float] = Field(
        default_factory=dict, sa_column=Column(JSON, nullable=False, server_default="{}")
    )
    test_metrics: dict[str, float] = Field(
        default_factory=dict, sa_column=Column(JSON, nullable=False, server_default="{}")
    )
    metric_splits: dict[str, str] = Field(
        default_factory=dict, sa_column=Column(JSON, nullable=False, server_default="{}")
    )
    # How many val and test images get their predictions stored at the end (0: none).
    predictions_max_images: int = Field(default=500, sa_column_kwargs={"server_default": "500"})
    # A trial of a hyperparameter sweep (services.domain.sweeps): its sweep, its Optuna trial
    # number, and, when the pruner stopped it, the epoch whose value decided that.
    sweep_id: int | None = Field(default=None, foreign_key="sweep.id", index=True)
    sweep_trial: int | None = None
    pruned_epoch: int | None = None


class SweepState(StrEnum):
    running = "running"  # asking for trials, or waiting for the ones running
    finished = "finished"  # every trial asked for has finished
    cancelled = "cancelled"
    failed = "failed"  # the sweep cannot go on (its objective is never reported, ...)


class Sweep(SQLModel, table=True):
    """A hyperparameter search. Its trials are ordinary jobs (`Job.sweep_id`); what the optimizer
    knows (trials, values, intermediate values) lives in Optuna's own tables in this database,
    under the study `study_name`, so a sweep survives restarts of every process."""

    id: int | None = Field(default=None, primary_key=True)
    project_id: int = Field(foreign_key="project.id", index=True)
    dataset_version_id: int = Field(foreign_key="datasetversion.id")
    created_by: int = Field(foreign_key="user.id")
    name: str = Field(max_length=120)
    framework: str = Field(max_length=32)
    task: str = Field(max_length=32)
    model: str = Field(max_length=120)
    device: str = Field(default="auto", max_length=16)
    resources: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    # hyperparameter -> {"type": "fixed", "value"} | {"type": "int"|"float", "low", "high", "log"}
    #                   | {"type": "choice", "choices": [...]}
    search_space: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    objective: str = Field(max_length=64)
    direction: str = Field(default="maximize", max_length=8)
    n_trials: int
    parallelism: int = 1
    sampler: str = Field(default="tpe", max_length=16)
    pruner: str = Field(default="median", max_length=16)
    seed: int | None = None
    state: SweepState = Field(default=SweepState.running, sa_type=String(16), index=True)
    study_name: str = Field(default="", max_length=120)
    mlflow_run_id: str | None = Field(default=None, max_length=64)
    # Why the sweep is not asking for more trials now, or why it failed.
    message: str = Field(default="", max_length=500)
    created_at: datetime = Field(default_factory=utcnow)
    finished_at: datetime | None = None


class JobEvent(SQLModel, table=True):
    """Every accepted trainer callback and every state change; `event_id` makes callbacks idempotent."""

    __table_args__ = (UniqueConstraint("job_id", "event_id"),)

    id: int | None = Field(default=None, primary_key=True)
    job_id: int = Field(foreign_key="job.id", index=True)
    event_id: str = Field(max_length=64)
    type: str = Field(max_length=32)
    payload: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(default_factory=utcnow)


class JobMetric(SQLModel, table=True):
    """One row per (job, epoch): a duplicated epoch callback cannot add a second point."""

    __table_args__ = (UniqueConstraint("job_id", "epoch"),)

    id: int | None = Field(default=None, primary_key=True)
    job_id: int = Field(foreign_key="job.id", index=True)
    epoch: int
    metrics: dict[str, float] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(default_factory=utcnow)


class JobTag(SQLModel, table=True):
    """A label on a run ("baseline", "paper"), for finding runs again; a table so filters stay in SQL."""

    __table_args__ = (UniqueConstraint("job_id", "tag"),)

    id: int | None = Field(default=None, primary_key=True)
    job_id: int = Field(foreign_key="job.id", index=True)
    tag: str = Field(max_length=40, index=True)


class SavedComparison(SQLModel, table=True):
    """A named selection of runs and how to view them, shared by URL with the project's members."""

    id: int | None = Field(default=None, primary_key=True)
    project_id: int = Field(foreign_key="project.id", index=True)
    name: str = Field(max_length=120)
    job_ids: list[int] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    metric: str = Field(default="", max_length=120)
    only_differences: bool = True
    created_by: int = Field(foreign_key="user.id")
    created_at: datetime = Field(default_factory=utcnow)


class RefreshToken(SQLModel, table=True):
    """One link of a rotating refresh-token chain; a second use of a link revokes its whole family."""

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="user.id", index=True)
    family_id: str = Field(index=True, max_length=64)
    token_hash: str = Field(index=True, unique=True, max_length=64)
    expires_at: datetime
    created_at: datetime = Field(default_factory=utcnow)
    used_at: datetime | None = None
    revoked_at: datetime | None = None


class PasswordResetToken(SQLModel, table=True):
    """Single-use, short-lived; only the SHA-256 is stored."""

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="user.id", index=True)
    token_hash: str = Field(index=True, unique=True, max_length=64)
    expires_at: datetime
    created_at: datetime = Field(default_factory=utcnow)
    used_at: datetime | None = None


class PlatformSetting(SQLModel, table=True):
    """Switches platform admins flip at run time (e.g. sign-up on/off), overriding the environment."""

    key: str = Field(primary_key=True, max_length=64)
    value: str = Field(max_length=500)
    updated_at: datetime = Field(default_factory=utcnow)


class AuditEvent(SQLModel, table=True):
    """Append-only record of every mutating action and every denial (see services.domain.audit)."""

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(default_factory=utcnow, index=True)
    actor_id: int | None = Field(default=None, index=True)
    actor: str = Field(default="", max_length=64)
    action: str = Field(max_length=160, index=True)
    target: str = Field(default="", max_length=300)
    project_id: int | None = Field(default=None, index=True)
    result: str = Field(max_length=16, index=True)
    status_code: int | None = None
    detail: str = Field(default="", max_length=500)
    # "web" or "rest" for actions (the same action through either channel writes the same row
    # otherwise); empty for rows the REST middleware writes for requests no action served.
    channel: str = Field(default="", max_length=8)
    source_ip: str = Field(default="", max_length=64)


class NotificationRule(SQLModel, table=True):
    """Where a project's events are sent (services.domain.notifications). `target` may hold a
    secret (a Slack token, a webhook path); it is only ever shown masked."""

    id: int | None = Field(default=None, primary_key=True)
    project_id: int = Field(foreign_key="project.id", index=True)
    events: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    kind: str = Field(max_length=16)  # "apprise" or "webhook"
    target: str = Field(max_length=2000)
    # The webhook's HMAC key (services.infra.signing); empty for Apprise targets.
    secret: str = Field(default="", max_length=128)
    created_by: int = Field(foreign_key="user.id")
    created_at: datetime = Field(default_factory=utcnow)


class NotificationEvent(SQLModel, table=True):
    """Something worth telling people about, written in the transaction that made it happen (an
    outbox): the worker fans it out to the rules' targets after the commit, so no event is lost to
    a crash between the commit and the enqueue."""

    id: int | None = Field(default=None, primary_key=True)
    project_id: int = Field(foreign_key="project.id", index=True)
    event: str = Field(max_length=32)
    subject: str = Field(default="", max_length=64)  # "job:42", "sweep:7", "project:3"
    # The user whose own job it is (their in-app list and e-mail), if any.
    owner_id: int | None = Field(default=None, foreign_key="user.id")
    # Only this rule (a "send a test" event); None: every rule of the project that asks for `event`.
    rule_id: int | None = Field(default=None, foreign_key="notificationrule.id")
    title: str = Field(max_length=200)
    body: str = Field(default="", max_length=2000)
    payload: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(default_factory=utcnow, index=True)
    fanned_out_at: datetime | None = Field(default=None, index=True)


class NotificationDelivery(SQLModel, table=True):
    """One attempt to send one event to one target: the project's delivery log."""

    id: int | None = Field(default=None, primary_key=True)
    project_id: int = Field(foreign_key="project.id", index=True)
    event_id: int = Field(foreign_key="notificationevent.id", index=True)
    rule_id: int | None = Field(default=None, foreign_key="notificationrule.id")
    event: str = Field(max_length=32)
    target: str = Field(max_length=300)  # masked
    attempt: int = 1
    status: str = Field(max_length=16)  # "sent", "retrying", "failed"
    detail: str = Field(default="", max_length=500)
    created_at: datetime = Field(default_factory=utcnow, index=True)


class UserNotification(SQLModel, table=True):
    """An entry of a user's in-app list (the bell): one of their own jobs finished."""

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="user.id", index=True)
    project_id: int = Field(foreign_key="project.id")
    event: str = Field(max_length=32)
    title: str = Field(max_length=200)
    link: str = Field(default="", max_length=300)
    created_at: datetime = Field(default_factory=utcnow, index=True)
    read_at: datetime | None = None


class RegisteredModel(SQLModel, table=True):
    """A named model of a project; MLflow's Model Registry holds it as `mlflow_name`."""

    __table_args__ = (UniqueConstraint("project_id", "name"),)

    id: int | None = Field(default=None, primary_key=True)
    project_id: int = Field(foreign_key="project.id", index=True)
    name: str = Field(max_length=100)
    mlflow_name: str = Field(max_length=200, unique=True)
    description: str = Field(default="", max_length=2000)
    created_by: int = Field(foreign_key="user.id")
    created_at: datetime = Field(default_factory=utcnow)


class ModelVersion(SQLModel, table=True):
    """One registered version with its lineage: where its weights came from and how good they are.

    `version` is MLflow's version number. `source` is "job" (a finished job's best.pt) or "upload"
    (weights brought in, checked by the trainer). `exports` lists {format, uri, parity, added_at}.
    """

    __table_args__ = (UniqueConstraint("model_id", "version"),)

    id: int | None = Field(default=None, primary_key=True)
    model_id: int = Field(foreign_key="registeredmodel.id", index=True)
    version: int
    source: str = Field(max_length=16)
    job_id: int | None = Field(default=None, foreign_key="job.id", index=True)
    dataset_version_id: int | None = Field(default=None, foreign_key="datasetversion.id")
    weights_uri: str = Field(max_length=1024)
    filename: str = Field(default="", max_length=255)
    mlflow_run_id: str = Field(max_length=64)
    framework: str = Field(max_length=32)
    task: str = Field(max_length=32)
    architecture: str = Field(max_length=120)
    classes: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    imgsz: int | None = None
    params: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    val_metrics: dict[str, float] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    test_metrics: dict[str, float] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    exports: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    description: str = Field(default="", max_length=2000)
    registered_by: int = Field(foreign_key="user.id")
    created_at: datetime = Field(default_factory=utcnow)


class ModelAlias(SQLModel, table=True):
    """A movable name (champion, staging) for one version of a model, mirrored in MLflow."""

    __table_args__ = (UniqueConstraint("model_id", "alias"),)

    id: int | None = Field(default=None, primary_key=True)
    model_id: int = Field(foreign_key="registeredmodel.id", index=True)
    alias: str = Field(max_length=64)
    version_id: int = Field(foreign_key="modelversion.id")
    updated_by: int = Field(foreign_key="user.id")
    updated_at: datetime = Field(default_factory=utcnow)
