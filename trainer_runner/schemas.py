"""Wire models of the backend <-> trainer protocol (docs/trainer-protocol.md, v1.6).

The backend keeps its own copy (`services/infra/trainer_client.py`); a test checks they agree, so the
two sides never import each other.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal
from uuid import uuid4

from pydantic import AfterValidator, BaseModel, Field, model_validator

JobState = Literal["accepted", "running", "succeeded", "failed", "cancelled"]
FINAL_STATES: frozenset[str] = frozenset({"succeeded", "failed", "cancelled"})
EventType = Literal["started", "heartbeat", "epoch", "finished"]
EventState = Literal["running", "succeeded", "failed", "cancelled"]
# lost (v1.4): the attempt's process or node died without reporting; resume from the checkpoint.
ErrorKind = Literal["transient", "permanent", "user", "lost"]
PROTOCOL_VERSION = "1.5"
# v1.5: what an attempt does. `batch_inference` runs a model over images (trainer_runner.batch).
JobKind = Literal["train", "batch_inference"]


def _require_s3_uri(value: str) -> str:
    """Only object-storage addresses cross the boundary, never a local path or http URL."""
    if not value.startswith("s3://") or not value[len("s3://") :].split("/", 1)[0]:
        raise ValueError("must be an s3://bucket/key URI")
    return value


def _require_http_url(value: str) -> str:
    if not value.startswith(("http://", "https://")):
        raise ValueError("must be an http(s) URL")
    return value


S3UriStr = Annotated[str, AfterValidator(_require_s3_uri)]
HttpUrlStr = Annotated[str, AfterValidator(_require_http_url)]


class Resources(BaseModel):
    """What one attempt needs (v1.4). The default is one CPU slot, as before v1.4."""

    gpus: int = Field(default=0, ge=0, le=64)
    cpus: float = Field(default=1.0, gt=0, le=1024)
    memory_gb: float | None = Field(default=None, gt=0)
    accelerator: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9_.-]{1,64}$",
        description="Accelerator type such as 'A100'; null takes any node.",
    )


class BatchInference(BaseModel):
    """v1.5: the `inference` of a `batch_inference` job: which model, over which images.

    `source: "dataset"`: `dataset_uri` is a dataset version (its manifest and archive, every
    split); `source: "zip"`: `dataset_uri` is a zip of images (folders allowed, other files skipped).
    """

    model_uri: S3UriStr
    source: Literal["dataset", "zip"] = "dataset"
    conf: float = Field(default=0.25, ge=0.0, le=1.0)
    max_results: int = Field(default=100, ge=1, le=1000)
    gallery_size: int = Field(default=8, ge=0, le=64)


class StartJobRequest(BaseModel):
    """`POST /jobs`: start (or re-attach to) one attempt of a job."""

    # job_id names a scratch folder, so it is kept to a safe alphabet.
    job_id: str = Field(pattern=r"^[A-Za-z0-9_-]{1,128}$")
    attempt: int = Field(default=1, ge=1)
    framework: str = "ultralytics"
    task: str = "detect"
    model: str = "yolo11n.yaml"
    hyperparameters: dict[str, Any] = Field(default_factory=dict)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    dataset_uri: S3UriStr
    output_uri: S3UriStr
    resume_from_uri: S3UriStr | None = None
    # v1.5, additive: weights to start a new training from (fine-tuning): an Ultralytics .pt,
    # a timm state_dict (.pt/.pth) or .safetensors. Ignored when resume_from_uri is set.
    init_weights: S3UriStr | None = None
    callback_url: HttpUrlStr
    callback_secret: str = Field(min_length=1)
    mlflow_experiment: str | None = None
    # v1.5: the MLflow run this job's run nests under (a sweep's run, for its trials).
    mlflow_parent_run_id: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_-]{1,64}$")
    heartbeat_interval_s: float = Field(default=5.0, gt=0, le=3600)
    resources: Resources = Field(default_factory=Resources)
    # v1.5: at most this many val and this many test images get their predictions stored
    # (`artifacts/predictions/{val,test}.json`); 0 stores none.
    predictions_max_images: int = Field(default=500, ge=0, le=10_000)
    kind: JobKind = "train"
    inference: BatchInference | None = None

    @model_validator(mode="after")
    def _inference_for_batch_jobs(self) -> StartJobRequest:
        if (self.kind == "batch_inference") != (self.inference is not None):
            raise ValueError("'inference' is required for kind 'batch_inference' and only for it")
        return self


class CallbackError(BaseModel):
    kind: ErrorKind
    message: str


class JobStatus(BaseModel):
    """`GET /jobs/{job_id}` and the 202 of `POST /jobs`."""

    job_id: str
    attempt: int
    state: JobState
    epoch: int | None = None
    # v1.4: why a failed attempt failed, when the trainer knows it (always for kind `lost`).
    error: CallbackError | None = None


class NodeCapacity(BaseModel):
    """One machine of the fleet as `GET /capacity` reports it (v1.4)."""

    node_id: str
    alive: bool
    cpus_total: float
    cpus_free: float
    gpus_total: int
    gpus_free: int
    accelerator: str | None = None
    memory_gb_free: float | None = None


class Capacity(BaseModel):
    """`GET /capacity`: what the fleet has free now, per node."""

    executor: Literal["local", "ray"]
    jobs_running: int
    nodes: list[NodeCapacity]


class CallbackEvent(BaseModel):
    """Body of every trainer -> backend callback."""

    event_id: str = Field(default_factory=lambda: uuid4().hex)
    job_id: str
    attempt: int
    type: EventType
    state: EventState
    epoch: int | None = None
    total_epochs: int | None = None
    metrics: dict[str, float] | None = None
    mlflow_run_id: str | None = None
    artifacts: dict[str, str] | None = None
    error: CallbackError | None = None
    device: str | None = None
    log_tail: list[str] | None = None
    # Additive since v1.1: per-epoch validation summary (epoch events) and the dataset report
    # (counts and skipped corrupt images; on `finished`).
    validation: dict[str, Any] | None = None
    dataset: dict[str, Any] | None = None
    # Additive (failure handling): on `finished`, whether MLflow got everything by then -
    # {"enabled", "complete", "pending", "failures", "mlflow_run_id"}. With complete false the
    # job goes on replaying into MLflow after this callback, for a bounded time.
    tracking: dict[str, Any] | None = None
    # Additive (v1.3): the newest epoch whose last.pt is in storage (checkpoints are stored at
    # most every TRAINER_CHECKPOINT_INTERVAL_S), on every event once there is one.
    checkpoint_epoch: int | None = None
    # Additive (v1.5): on `finished`, best.pt scored on the dataset's test split, under the
    # validation names prefixed `test/` (`test/map50_95`, `test/top1`); absent without one.
    test_metrics: dict[str, float] | None = None


# v1.6: the most events the outbox sends in one `POST {callback_url}/batch` (the backend takes 500).
MAX_BATCH_EVENTS = 500


class CallbackBatch(BaseModel):
    """v1.6: body of `POST {callback_url}/batch`, events of one job oldest first, signed like one
    callback; the backend applies them all or none."""

    events: list[CallbackEvent] = Field(min_length=1, max_length=MAX_BATCH_EVENTS)


class InspectRequest(BaseModel):
    """`POST /inspect` (v1.5): what is this weights file, loaded the safe way?"""

    weights_uri: S3UriStr
    filename: str = Field(
        default="", max_length=255, description="Original name; its suffix picks the loader."
    )
    architecture: str | None = Field(
        default=None, max_length=120, description="timm model name of a bare state_dict, when known."
    )
