"""Public shapes returned by the REST API and used by the UI state; ORM rows stay in services."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from services.domain.fleet import Resources
from services.domain.models import MAX_QUOTA, DatasetVersion, Job, JobMetric, Project, id_of


class LoginRequest(BaseModel):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=256)


class TokenPublic(BaseModel):
    access_token: str
    token_type: str = "bearer"


class UserPublic(BaseModel):
    id: int
    username: str
    avatar_name: str
    badge_color: str
    is_platform_admin: bool


class ProjectCreate(BaseModel):
    name: str = Field(min_length=1, max_length=120)
    description: str = Field(default="", max_length=2000)


class ProjectPublic(BaseModel):
    id: int
    name: str
    description: str
    role: str
    max_running_jobs: int | None = Field(default=None, description="Jobs running at once; null: no limit.")
    max_queued_jobs: int | None = Field(default=None, description="Jobs waiting at once; null: no limit.")
    priority: int = Field(
        default=0,
        description="Dispatch priority, set by a platform admin: queued jobs of higher projects go first.",
    )

    @classmethod
    def of(cls, project: Project, role: str) -> ProjectPublic:
        return cls(
            id=id_of(project),
            name=project.name,
            description=project.description,
            role=role,
            max_running_jobs=project.max_running_jobs,
            max_queued_jobs=project.max_queued_jobs,
            priority=project.priority,
        )


def _quota(what: str) -> Any:
    # strict: JSON `true` or "3" is not a number of jobs.
    return Field(ge=1, le=MAX_QUOTA, strict=True, description=f"Most jobs {what} at once; null: no limit.")


class QuotasUpdate(BaseModel):
    """Both limits, each required (PUT replaces both): a whole number of jobs, or null for no limit."""

    max_running_jobs: int | None = _quota("dispatching or running")
    max_queued_jobs: int | None = _quota("waiting (queued, or waiting to retry)")
    max_gpus: int | None = Field(
        default=None,
        ge=1,
        le=MAX_QUOTA,
        strict=True,
        description="Most GPUs the project's dispatching or running jobs hold at once; null: no "
        "limit. Left out: unchanged.",
    )


class QuotasPublic(BaseModel):
    """A project's job quotas and what counts against them now (see services.domain.quotas)."""

    project_id: int
    max_running_jobs: int | None
    max_queued_jobs: int | None
    max_gpus: int | None = None
    running: int = Field(description="The project's jobs dispatching or running now.")
    queued: int = Field(description="The project's jobs waiting now (queued, or waiting to retry).")
    gpus: int = Field(default=0, description="GPUs the project's dispatching or running jobs hold.")


class DatasetVersionPublic(BaseModel):
    id: int
    dataset_id: int
    name: str = ""
    version: int
    format: str
    task: str
    uri: str
    classes: list[str]
    num_images: int
    num_labels: int
    split_counts: dict[str, int]
    size_bytes: int
    created_at: datetime

    @classmethod
    def of(cls, version: DatasetVersion, name: str = "") -> DatasetVersionPublic:
        return cls(name=name, **version.model_dump(exclude={"created_at"}), created_at=version.created_at)


class JobCreate(BaseModel):
    dataset_version_id: int
    name: str = Field(default="", max_length=120)
    framework: str = "ultralytics"
    task: str = "detect"
    model: str = "yolo11n.yaml"
    hyperparameters: dict[str, Any] = Field(default_factory=dict)
    device: str = "auto"
    resources: Resources = Field(
        default_factory=Resources, description="What the job asks the fleet for; default one CPU slot."
    )
    start_from: str = Field(
        default="",
        max_length=300,
        description=(
            "Weights to fine-tune from: '' or 'scratch', a registered version ('models/<name>@<alias>', "
            "'models/<name>/<version>') or a job's best checkpoint ('job:<id>'). The framework, task "
            "and architecture then come from those weights."
        ),
    )
    predictions_max_images: int = Field(
        default=500,
        ge=0,
        le=10_000,
        description="Images of each of val and test whose predictions are stored at the end (0: none).",
    )


class MetricPoint(BaseModel):
    epoch: int
    metrics: dict[str, float]

    @classmethod
    def of(cls, row: JobMetric) -> MetricPoint:
        return cls(epoch=row.epoch, metrics=row.metrics)


class JobPublic(BaseModel):
    id: int
    project_id: int
    dataset_version_id: int | None = Field(
        description="The data the job ran on; null: a batch run of uploaded weights over a zip of images."
    )
    name: str
    framework: str
    task: str
    model: str
    hyperparameters: dict[str, Any]
    device: str
    resources: dict[str, Any] = Field(default_factory=dict, description="What the job asked for.")
    kind: str = Field(default="train", description="train, or batch_inference (a model over images).")
    state: str
    waiting_for: str | None = Field(default=None, description="What a queued job waits for.")
    start_from: str | None = Field(default=None, description="What the job fine-tunes from; null: scratch.")
    queue_position: int | None = Field(default=None, description="1 = next to be dispatched.")
    attempt: int
    mlflow_run_id: str | None
    current_epoch: int | None
    checkpoint_epoch: int | None = None
    total_epochs: int | None
    trainer_device: str | None
    error_kind: str | None
    error_message: str | None
    artifacts: dict[str, str]
    log_tail: list[str]
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    last_heartbeat_at: datetime | None
    final_metrics: dict[str, float] = Field(default_factory=dict, description="The newest epoch's metrics.")
    val_metrics: dict[str, float] = Field(
        default_factory=dict, description="best.pt on the split `metric_splits.val_metrics` names."
    )
    test_metrics: dict[str, float] = Field(
        default_factory=dict, description="best.pt on the test split, named `test/<metric>`."
    )
    metric_splits: dict[str, str] = Field(
        default_factory=dict,
        description="Which dataset split each set of figures comes from: `val_metrics` -> "
        "`val` (or `train` when the dataset had no val images), `test_metrics` -> `test`; "
        "per-epoch `metrics` come from the same split as `val_metrics`.",
    )
    predictions_max_images: int = 500
    sweep_id: int | None = Field(default=None, description="The sweep this job is a trial of.")
    sweep_trial: int | None = Field(default=None, description="Its trial number in that sweep.")
    pruned_epoch: int | None = Field(
        default=None, description="Set when the sweep's pruner stopped it: the epoch that decided."
    )

    @property
    def label(self) -> str:
        """What a person reads as its status: `pruned` for a trial the pruner stopped."""
        return (
            "pruned"
            if self.pruned_epoch is not None and self.state in {"cancelled", "succeeded"}
            else self.state
        )

    @classmethod
    def of(cls, job: Job) -> JobPublic:
        # States load from the database as plain strings; skip pydantic's enum-type warning.
        return cls.model_validate(cls.public_fields(job.model_dump(warnings=False)))

    @staticmethod
    def public_fields(row: dict[str, Any]) -> dict[str, Any]:
        """A job row's columns as this model (or a subclass with more fields) validates them."""
        public = {k: v for k, v in row.items() if k not in ("callback_secret", "created_by")}
        if public["state"] not in ("queued", "retrying"):
            public["waiting_for"] = None  # a reason left from its wait, no longer true
        return public


class JobDetail(JobPublic):
    metrics: list[MetricPoint] = Field(default_factory=list)
    tags: list[str] = Field(default_factory=list)


class RunTags(BaseModel):
    tags: list[str] = Field(max_length=20, description="Replaces the run's tags; 1-40 characters each.")


class JobListItem(JobPublic):
    owner: str
    owner_id: int


class ExportRequest(BaseModel):
    formats: list[str] = Field(default_factory=lambda: ["onnx", "torchscript"], min_length=1, max_length=6)


class RetryRequest(BaseModel):
    resume: bool = True


class SavedComparisonPublic(BaseModel):
    id: int
    project_id: int
    name: str
    job_ids: list[int]
    metric: str
    only_differences: bool
    created_by: int


class SavedComparisonCreate(BaseModel):
    name: str = Field(min_length=1, max_length=120)
    job_ids: list[int] = Field(min_length=1, max_length=500)
    metric: str = Field(default="", max_length=120)
    only_differences: bool = True


class BatchInferenceCreate(BaseModel):
    """`POST /projects/{p}/batch-inference`: a model over a dataset version (a zip: the upload route)."""

    model: str = Field(
        min_length=1, max_length=200, description="jobs/<id> or models/<name>@<alias>", examples=["jobs/12"]
    )
    dataset_version_id: int = Field(ge=1)
    conf: float = Field(default=0.25, ge=0.0, le=1.0)
    name: str = Field(default="", max_length=120)


# --- sweeps ---------------------------------------------------------------------------------------


class SweepCreate(BaseModel):
    """A hyperparameter sweep: a search space over the catalogue's hyperparameters of one
    framework/task, and what to optimise. See services.domain.sweeps for the rules."""

    dataset_version_id: int
    name: str = Field(default="", max_length=120)
    framework: str = "ultralytics"
    task: str = "detect"
    model: str = "yolo11n.yaml"
    device: str = "auto"
    resources: Resources = Field(default_factory=Resources)
    search_space: dict[str, dict[str, Any]] = Field(
        description=(
            'hyperparameter -> {"type": "fixed", "value": v} | {"type": "int" or "float", "low": a, '
            '"high": b, "log": false} | {"type": "choice", "choices": [...]}; '
            "unnamed ones keep their defaults"
        )
    )
    objective: str = Field(min_length=1, max_length=64, description="A per-epoch metric, e.g. map50_95.")
    direction: str = Field(default="maximize", description="maximize or minimize")
    n_trials: int = Field(default=10, ge=1, le=500)
    parallelism: int = Field(default=1, ge=1, le=32)
    sampler: str = Field(default="tpe", description="tpe, random or grid")
    pruner: str = Field(default="median", description="median, hyperband or none")
    seed: int | None = Field(default=None, ge=0, le=2**31 - 1)


class SweepTrial(BaseModel):
    """One trial: its Optuna number and state, its job, its parameters and values."""

    number: int
    state: str  # Optuna's: RUNNING, COMPLETE, PRUNED, FAIL
    job_id: int | None
    job_state: str | None
    params: dict[str, Any]
    value: float | None
    intermediate: dict[int, float] = Field(default_factory=dict, description="epoch -> objective")
    pruned_epoch: int | None = None


class SweepPublic(BaseModel):
    id: int
    project_id: int
    dataset_version_id: int
    name: str
    framework: str
    task: str
    model: str
    search_space: dict[str, dict[str, Any]]
    objective: str
    direction: str
    n_trials: int
    parallelism: int
    sampler: str
    pruner: str
    seed: int | None
    state: str
    message: str
    mlflow_run_id: str | None
    created_at: datetime
    finished_at: datetime | None
    trials_done: int = 0
    trials_running: int = 0
    best_value: float | None = None
    best_job_id: int | None = None


class SweepDetail(SweepPublic):
    trials: list[SweepTrial] = Field(default_factory=list)
    best_params: dict[str, Any] = Field(default_factory=dict)
    importances: dict[str, float] = Field(
        default_factory=dict, description="Parameter importances (empty with too few finished trials)."
    )
    importance_note: str = ""
