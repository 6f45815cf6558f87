"""The backend's own copy of the trainer's wire models (docs/trainer-protocol.md): the callback
event, (v1.4) a job's resources and the gateway's capacity, (v1.5) a batch inference job's
request, and (v1.6) a batch of callback events in one signed request.

The trainer has its copy (`trainer_runner/schemas.py`); the two sides never import each other,
and tests/test_protocol_agreement.py checks that both copies have the same fields. Values the
backend does not act on stay loosely typed here (an error `kind` the backend does not know yet
is still recorded), so a newer trainer never has its callbacks refused for an additive change.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

EventType = Literal["started", "heartbeat", "epoch", "finished"]
FINAL_STATES = frozenset({"succeeded", "failed", "cancelled"})


class TrainerError(BaseModel):
    kind: str
    message: str


class TrainerEvent(BaseModel):
    """Body of every trainer -> backend callback, validated before anything is written."""

    model_config = ConfigDict(extra="ignore")

    event_id: str
    job_id: str | None = None
    attempt: int | None = None
    type: EventType
    state: str | None = None
    epoch: int | None = None
    total_epochs: int | None = None
    metrics: dict[str, Any] | None = None
    mlflow_run_id: str | None = None
    artifacts: dict[str, str] | None = None
    error: TrainerError | None = None
    device: str | None = None
    log_tail: list[str] | None = None
    validation: dict[str, Any] | None = None
    dataset: dict[str, Any] | None = None
    tracking: dict[str, Any] | None = None
    checkpoint_epoch: int | None = None
    # v1.5: on `finished`, best.pt scored on the test split (`test/<metric>`).
    test_metrics: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _consistent(self) -> TrainerEvent:
        if self.type == "epoch" and self.epoch is None:
            raise ValueError("an epoch callback needs an integer 'epoch'")
        if self.type == "finished" and self.state not in FINAL_STATES:
            raise ValueError(f"a finished callback needs 'state' in {sorted(FINAL_STATES)}")
        return self


# --- v1.6: several callback events of one job in one signed request ------------------------------

# More than any outbox sends at once; keeps one request's transaction short.
MAX_BATCH_EVENTS = 500


class TrainerBatch(BaseModel):
    """Body of `POST {callback_url}/batch`: events of one job, oldest first, applied in one
    transaction (all or nothing), each with the same idempotency as a single callback."""

    model_config = ConfigDict(extra="ignore")

    events: list[TrainerEvent] = Field(min_length=1, max_length=MAX_BATCH_EVENTS)


class BatchItemResult(BaseModel):
    """What became of one event of a batch: `applied`, `duplicate` or `ignored`."""

    event_id: str
    result: Literal["applied", "duplicate", "ignored"]


class BatchResult(BaseModel):
    """The answer to a batch: one result per event, in the order sent."""

    results: list[BatchItemResult]
    applied: int


# --- v1.4: resources per job, GET /capacity ----------------------------------------------------


class Resources(BaseModel):
    """What one job asks for (the `resources` of the job spec). Absent: one CPU slot, as before v1.4."""

    model_config = ConfigDict(extra="forbid")

    gpus: int = Field(default=0, ge=0, le=64, description="Whole GPUs on one node.")
    cpus: float = Field(default=1.0, gt=0, le=1024, description="CPU cores (or local CPU slots).")
    memory_gb: float | None = Field(default=None, gt=0, description="Memory; null: no ask.")
    accelerator: str | None = Field(
        default=None, pattern=r"^[A-Za-z0-9_.-]{1,64}$", description="GPU type, e.g. A100; null: any."
    )


class NodeCapacity(BaseModel):
    """One node of `GET /capacity`."""

    node_id: str
    alive: bool = True
    cpus_total: float = 0.0
    cpus_free: float = 0.0
    gpus_total: int = 0
    gpus_free: int = 0
    accelerator: str | None = None
    memory_gb_free: float | None = None


class Capacity(BaseModel):
    """The trainer gateway's answer to `GET /capacity`."""

    executor: str = "local"  # "local" or "ray"; loosely typed like the rest of this copy
    jobs_running: int = 0
    nodes: list[NodeCapacity] = Field(default_factory=list)


# --- v1.5: batch inference jobs ------------------------------------------------------------------

JobKind = Literal["train", "batch_inference"]


class BatchInference(BaseModel):
    """The `inference` of a `kind: "batch_inference"` job spec: which model over which images.

    `source: "dataset"`: the spec's `dataset_uri` is a dataset version; `"zip"`: a zip of images.
    """

    model_config = ConfigDict(extra="forbid")

    model_uri: str
    source: Literal["dataset", "zip"] = "dataset"
    conf: float = Field(default=0.25, ge=0.0, le=1.0)
    max_results: int = Field(default=100, ge=1, le=1000)
    gallery_size: int = Field(default=8, ge=0, le=64)
