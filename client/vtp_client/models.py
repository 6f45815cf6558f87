"""Request and response shapes of the REST API, as the client sees them.

These mirror the server's public models field for field; `tests/client/test_openapi_agreement.py`
checks every one against the server's OpenAPI schema, so a renamed or retyped field fails a test
instead of a user's script. Unknown fields the server adds later are ignored, so an older client
keeps working with a newer server.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

FINISHED_STATES = frozenset({"succeeded", "failed", "cancelled"})


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore")


# --- accounts --------------------------------------------------------------------------------------


class LoginRequest(_Model):
    username: str
    password: str


class RefreshRequest(_Model):
    refresh_token: str


class LogoutRequest(_Model):
    refresh_token: str | None = None


class TokenPair(_Model):
    access_token: str
    refresh_token: str
    token_type: str = "bearer"
    expires_in: int


class User(_Model):
    id: int
    username: str
    avatar_name: str
    badge_color: str
    is_platform_admin: bool


class PersonalTokenCreate(_Model):
    name: str
    expires_in_days: int = 90


class PersonalToken(_Model):
    id: int
    name: str
    created_at: datetime
    expires_at: datetime
    last_used_at: datetime | None


class PersonalTokenCreated(PersonalToken):
    token: str


# --- projects --------------------------------------------------------------------------------------


class ProjectCreate(_Model):
    name: str
    description: str = ""


class Project(_Model):
    id: int
    name: str
    description: str
    role: str
    max_running_jobs: int | None = None
    max_queued_jobs: int | None = None


# --- datasets --------------------------------------------------------------------------------------


class DatasetVersion(_Model):
    """One immutable version of a dataset (`GET /projects/{p}/datasets` lists the latest of each)."""

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


class DatasetVersionDetail(DatasetVersion):
    parent_version_id: int | None = None
    split_method: str = "upload"
    split_seed: int | None = None
    split_ratios: dict[str, float] = Field(default_factory=dict)
    class_counts: dict[str, dict[str, int]] = Field(default_factory=dict)
    num_warnings: int = 0
    note: str = ""


class Problem(_Model):
    file: str
    line: int | None = None
    message: str


class Report(_Model):
    format: str
    task: str
    counts: dict[str, int]
    errors: list[Problem]
    warnings: list[Problem]


class UploadResult(DatasetVersionDetail):
    report: Report


class RenameRequest(_Model):
    names: dict[str, str]
    from_version: int | None = None


class SplitRequest(_Model):
    train: float = 0.8
    val: float = 0.1
    test: float = 0.1
    seed: int = 0
    method: Literal["stratified", "random", "keep"] = "stratified"
    from_version: int | None = None


class DatasetStats(_Model):
    task: str
    classes: list[str]
    num_images: int
    split_counts: dict[str, int]
    images_per_class: dict[str, dict[str, int]]
    instances_per_class: dict[str, dict[str, int]]
    objects_per_image: dict[str, dict[str, int]]
    background_images: int


# --- jobs ------------------------------------------------------------------------------------------


class JobCreate(_Model):
    dataset_version_id: int
    name: str = ""
    framework: str = "ultralytics"
    task: str = "detect"
    model: str = "yolo11n.yaml"
    hyperparameters: dict[str, Any] = Field(default_factory=dict)
    device: str = "auto"
    # Images of each of val and test whose predictions are stored at the end (0: none).
    predictions_max_images: int = 500


class MetricPoint(_Model):
    epoch: int
    metrics: dict[str, float]


class Job(_Model):
    id: int
    project_id: int
    dataset_version_id: int | None  # None: a batch run of uploaded weights over a zip of images
    name: str
    framework: str
    task: str
    model: str
    hyperparameters: dict[str, Any]
    device: str
    kind: str = "train"  # or "batch_inference": a model run over images
    state: str
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
    # best.pt's figures at the end, and the dataset split each set comes from
    # (`metric_splits`: {"val_metrics": "val", "test_metrics": "test"}).
    val_metrics: dict[str, float] = Field(default_factory=dict)
    test_metrics: dict[str, float] = Field(default_factory=dict)
    metric_splits: dict[str, str] = Field(default_factory=dict)
    sweep_id: int | None = None  # the sweep this job is a trial of
    sweep_trial: int | None = None
    pruned_epoch: int | None = None  # set when the sweep's pruner stopped it

    @property
    def finished(self) -> bool:
        return self.state in FINISHED_STATES


class JobDetail(Job):
    metrics: list[MetricPoint] = Field(default_factory=list)


class JobListItem(Job):
    owner: str
    owner_id: int
    queue_position: int | None = None


class RetryRequest(_Model):
    resume: bool = True


class ExportRequest(_Model):
    formats: list[str] = Field(default_factory=lambda: ["onnx", "torchscript"])


class Artifact(_Model):
    """One object the job left in storage; `download_url` is short-lived (minutes)."""

    key: str
    uri: str
    size: int
    kind: str
    download_url: str


# --- sweeps ----------------------------------------------------------------------------------------


class SweepCreate(_Model):
    """search_space: hyperparameter -> {"type": "fixed", "value"} | {"type": "int"|"float", "low",
    "high", "log"} | {"type": "choice", "choices"}."""

    dataset_version_id: int
    search_space: dict[str, dict[str, Any]]
    objective: str
    direction: str = "maximize"
    n_trials: int = 10
    parallelism: int = 1
    sampler: str = "tpe"
    pruner: str = "median"
    seed: int | None = None
    name: str = ""
    framework: str = "ultralytics"
    task: str = "detect"
    model: str = "yolo11n.yaml"
    device: str = "auto"


class SweepTrial(_Model):
    number: int
    state: str  # RUNNING, COMPLETE, PRUNED, FAIL
    job_id: int | None
    job_state: str | None
    params: dict[str, Any]
    value: float | None
    intermediate: dict[int, float] = Field(default_factory=dict)
    pruned_epoch: int | None = None


class Sweep(_Model):
    id: int
    project_id: int
    name: str
    search_space: dict[str, dict[str, Any]]
    objective: str
    direction: str
    n_trials: int
    parallelism: int
    sampler: str
    pruner: str
    state: str  # running, finished, cancelled, failed
    message: str
    mlflow_run_id: str | None
    trials_done: int = 0
    trials_running: int = 0
    best_value: float | None = None
    best_job_id: int | None = None

    @property
    def finished(self) -> bool:
        return self.state != "running"


class SweepDetail(Sweep):
    trials: list[SweepTrial] = Field(default_factory=list)
    best_params: dict[str, Any] = Field(default_factory=dict)
    importances: dict[str, float] = Field(default_factory=dict)


# --- model registry --------------------------------------------------------------------------------


class RegisterRequest(_Model):
    job_id: int
    name: str
    description: str = ""


class AliasRequest(_Model):
    version: int


class ModelExport(_Model):
    """An export attached to a registered version, with its parity check against PyTorch."""

    format: str
    uri: str
    parity: dict[str, Any] = Field(default_factory=dict)
    added_at: str | None = None


class ModelVersion(_Model):
    """One version of a registered model: model card facts, lineage and exports."""

    model: str  # the model's name in the project
    mlflow_name: str
    version: int
    aliases: list[str] = Field(default_factory=list)
    source: str  # "job" (a finished job's best.pt) or "upload"
    job_id: int | None = None
    dataset_version_id: int | None = None
    weights_uri: str
    filename: str = ""
    mlflow_run_id: str
    framework: str
    task: str
    architecture: str
    classes: list[str]
    imgsz: int | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    val_metrics: dict[str, float] = Field(default_factory=dict)
    test_metrics: dict[str, float] = Field(default_factory=dict)
    exports: list[ModelExport] = Field(default_factory=list)
    description: str = ""
    registered_by: str = ""
    created_at: datetime

    @property
    def ref(self) -> str:
        """The reference jobs, batch runs and the playground accept for this exact version."""
        return f"models/{self.model}/{self.version}"


class RegisteredModel(_Model):
    name: str
    mlflow_name: str
    description: str = ""
    latest_version: int | None = None
    aliases: dict[str, int] = Field(default_factory=dict)  # alias -> version
    versions: list[ModelVersion] = Field(default_factory=list)  # newest first


# --- batch inference -------------------------------------------------------------------------------


class BatchCreate(_Model):
    """A model (`jobs/<id>`, `models/<name>@<alias>`, `models/<name>/<version>`) over a dataset version."""

    model: str
    dataset_version_id: int
    conf: float = 0.25
    name: str = ""
