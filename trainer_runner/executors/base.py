"""The executor interface: where and how an attempt runs. The HTTP layer only talks to this.

Two executors implement it, chosen by `TRAINER_EXECUTOR` (see `make_executor`), the way MLflow
picks a tracking store by URI: `local` runs attempts as child processes of this server, `ray`
submits each attempt as a Ray Job. Both run the very same job runner (`trainer_runner.job`);
only placement, status and cancel differ. No other code branches on the executor.
"""

from __future__ import annotations

import logging
import threading
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

from trainer_runner.callbacks import CallbackSender
from trainer_runner.schemas import (
    CallbackError,
    CallbackEvent,
    Capacity,
    JobStatus,
    Resources,
    StartJobRequest,
)

log = logging.getLogger(__name__)


class NoCapacity(Exception):  # noqa: N818 - a condition, answered with 429
    """The attempt cannot be placed now; `waiting_for` says on what, in the UI's words."""

    def __init__(self, waiting_for: str, detail: str) -> None:
        super().__init__(detail)
        self.waiting_for = waiting_for
        self.detail = detail


class ExecutorUnavailable(Exception):  # noqa: N818 - a condition, answered with 503
    """The compute behind the executor (a Ray cluster) does not answer; nothing was started."""


class StaleAttempt(Exception):  # noqa: N818
    """A newer attempt of the same job is already known here."""


def effective_resources(request: StartJobRequest) -> Resources:
    """The resources an attempt takes: `device: cuda` without a GPU count means one GPU, so
    an older backend that only says "cuda" still gets a GPU of its own."""
    resources = request.resources
    if request.device == "cuda" and resources.gpus == 0:
        return resources.model_copy(update={"gpus": 1})
    return resources


@dataclass(frozen=True)
class Progress:
    """Training speed of one running attempt as of its last finished epoch (for /metrics)."""

    job_id: str
    attempt: int
    epochs_per_s: float | None
    images_per_s: float | None
    mlflow_failures: int = 0  # failed MLflow calls of the attempt so far (retried, never fatal)

    @classmethod
    def from_record(cls, job_id: str, attempt: int, record: dict[str, Any]) -> Progress | None:
        """From what the job runner records per epoch (`epoch_time_s`, `images_per_s`); None
        before its first epoch."""
        epoch_time, images = record.get("epoch_time_s"), record.get("images_per_s")
        if not epoch_time and images is None:
            return None
        return cls(
            job_id=job_id,
            attempt=attempt,
            epochs_per_s=1.0 / float(epoch_time) if epoch_time else None,
            images_per_s=float(images) if images is not None else None,
            mlflow_failures=int(record.get("mlflow_failures") or 0),
        )


class Executor(ABC):
    """Starts, watches and stops attempts; answers what the fleet has free.

    Every method is safe to call from several threads (the HTTP workers and `poll`).
    """

    name: str

    @abstractmethod
    def start(self, request: StartJobRequest, *, request_id: str | None = None) -> JobStatus:
        """Start an attempt, or answer the state of the same one (idempotent on job_id:attempt).

        `request_id` (the backend's X-Request-ID) goes to the attempt as `TRAINER_REQUEST_ID`:
        its log lines and callbacks carry it.

        Raises `NoCapacity` when it cannot be placed now (never accepts and leaves it pending)
        and `StaleAttempt` when a newer attempt of the job is known.
        """

    @abstractmethod
    def status(self, job_id: str) -> JobStatus | None:
        """State of the latest attempt of the job; None when unknown."""

    @abstractmethod
    def cancel(self, job_id: str) -> JobStatus | None:
        """Ask the latest attempt to stop at its next batch (its checkpoint is kept)."""

    @abstractmethod
    def capacity(self) -> Capacity:
        """Nodes with their total and free CPUs and GPUs."""

    @abstractmethod
    def running_count(self) -> int:
        """Attempts holding resources now."""

    @abstractmethod
    def progress(self) -> list[Progress]:
        """Speed of the attempts running now (those that finished an epoch)."""

    @abstractmethod
    def poll(self) -> None:
        """Called about once a second: find attempts that died and report them lost."""

    @abstractmethod
    def shutdown(self) -> None:
        """The server is stopping."""


class LostReporter:
    """Sends the `finished` callback of an attempt that cannot send it itself (its process or
    node died), on a thread, so polling never waits for the backend."""

    def __init__(self) -> None:
        self._threads: list[threading.Thread] = []

    def report(self, request: StartJobRequest, message: str) -> None:
        log.error(
            "attempt lost", extra={"job_id": request.job_id, "attempt": request.attempt, "why": message}
        )
        thread = threading.Thread(target=_send_lost, args=(request, message), daemon=True)
        thread.start()
        self._threads.append(thread)

    def join(self, timeout_s: float = 15.0) -> None:
        for thread in list(self._threads):
            thread.join(timeout=timeout_s)


def _send_lost(request: StartJobRequest, message: str) -> None:
    sender = CallbackSender(request.callback_url, request.callback_secret)
    try:
        sender.send(
            CallbackEvent(
                job_id=request.job_id,
                attempt=request.attempt,
                type="finished",
                state="failed",
                error=CallbackError(kind="lost", message=message),
            )
        )
    finally:
        sender.close()
