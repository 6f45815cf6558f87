"""The backend's own copy of the trainer's callback event (docs/trainer-protocol.md).

The trainer has its copy (`trainer_runner/schemas.py`); the two sides never import each other,
and tests/test_protocol_agreement.py checks that both copies have the same fields. Values the
backend does not act on stay loosely typed here (an error `kind` the backend does not know yet
is still recorded), so a newer trainer never has its callbacks refused for an additive change.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, model_validator

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

    @model_validator(mode="after")
    def _consistent(self) -> TrainerEvent:
        if self.type == "epoch" and self.epoch is None:
            raise ValueError("an epoch callback needs an integer 'epoch'")
        if self.type == "finished" and self.state not in FINAL_STATES:
            raise ValueError(f"a finished callback needs 'state' in {sorted(FINAL_STATES)}")
        return self
