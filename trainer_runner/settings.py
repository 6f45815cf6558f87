"""Settings of the trainer service, read from `TRAINER_*` environment variables.

The trainer is its own deployable: it shares no settings object with the backend. Every tier
runs the same code and differs only in these values.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

ENV_PREFIX = "TRAINER_"


class TrainerSettings(BaseSettings):
    """Configuration of one trainer process (the HTTP server and the job children it starts)."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore")

    scratch_dir: Path = Field(
        default_factory=lambda: Path(tempfile.gettempdir()) / "vtp-trainer",
        description="Writable local space for datasets, runs and job specs; disposable.",
    )
    # -- compute (docs/fleet.md) -----------------------------------------------------------
    executor: Literal["local", "ray"] = Field(
        default="local",
        description="Where attempts run: 'local' child processes, or jobs on a Ray cluster.",
    )
    max_concurrent_jobs: int = Field(
        default=0, ge=0, description="Cap on attempts running at once; 0: only resources limit them."
    )
    cpu_slots: float = Field(
        default=1.0,
        gt=0,
        description="Local executor: CPU jobs running at once (each takes its resources.cpus).",
    )
    warm_job_process: bool = Field(
        default=True,
        description="Local executor without GPUs: keep one job process started ahead, torch and "
        "the default framework already imported, and give it the next job. Saves every job the "
        "seconds those imports take (the whole start-up of a short job on a small machine); the "
        "idle process holds about 0.6 GB of memory. It is started only while no job runs.",
    )
    gpus: int | None = Field(
        default=None,
        ge=0,
        description="Local executor: GPUs to hand out; unset detects them with nvidia-smi. Tests "
        "use fake ones: each job still gets its own CUDA_VISIBLE_DEVICES.",
    )
    accelerator: str | None = Field(
        default=None, description="Local executor: accelerator type of this machine's GPUs (e.g. A100)."
    )
    ray_address: str = Field(
        default="http://127.0.0.1:8265",
        pattern=r"^https?://.+",
        description="Ray executor: the dashboard (Job Submission API) of the cluster.",
    )
    log_format: Literal["auto", "json", "console"] = Field(
        default="auto", description="stdout log lines: JSON, human-readable, or auto (console on a terminal)."
    )
    sentry_dsn: str = Field(
        default="", description="Send errors of the server and its jobs to Sentry (empty: off)."
    )
    ray_python: str = Field(
        default="python",
        description="Ray executor: the Python on each Ray node that has trainer_runner installed.",
    )
    cancel_poll_s: float = Field(
        default=0.0,
        ge=0,
        description="A job also stops when a cancel marker appears in object storage, checked this "
        "often (0: off). Set for jobs whose node this server cannot reach (Ray).",
    )
    retry_after_s: int = Field(default=15, ge=1, description="Retry-After sent with a 429.")
    s3_endpoint_url: str = ""
    s3_access_key: str = ""
    s3_secret_key: str = ""
    s3_region: str = "us-east-1"
    mlflow_tracking_uri: str = Field(
        default="",
        pattern=r"^(https?://.+)?$",
        description="MLflow tracking server, http(s)://host:port. Empty turns MLflow logging off.",
    )
    host: str = "127.0.0.1"
    port: int = 8100
    torch_threads: int = Field(default=0, ge=0, description="0 uses every core.")
    model_cache_size: int = Field(
        default=4, ge=1, description="Models kept loaded for /predict (least recently used out)."
    )
    plugins: str = Field(
        default="", description="Extra plugins, comma-separated 'module:Class' (TRAINER_PLUGINS)."
    )
    checkpoint_interval_s: float = Field(
        default=60.0,
        ge=0,
        description="Upload last.pt at most this often while training (0: every epoch). A "
        "trainer that dies loses at most this much training plus the epoch in progress; the "
        "final checkpoint is always uploaded.",
    )
    # -- failure handling (docs: trainer_runner/README.md, "Failure handling") ------------------
    s3_retry_budget_s: float = Field(
        default=180.0, ge=0, description="Total time one transfer is retried while S3 is down."
    )
    s3_connect_timeout_s: float = Field(default=5.0, gt=0)
    s3_read_timeout_s: float = Field(
        default=20.0, gt=0, description="A frozen S3 server shows up as an error this soon."
    )
    callback_timeout_s: float = Field(default=10.0, gt=0, description="One callback POST.")
    callback_max_backoff_s: float = Field(
        default=30.0, gt=0, description="Longest wait between two tries of an undelivered event."
    )
    callback_batch_max: int = Field(
        default=100,
        ge=1,
        le=500,
        description="Most queued events sent in one signed batch request (protocol v1.6); 1 turns "
        "batching off.",
    )
    callback_drain_budget_s: float = Field(
        default=600.0,
        ge=0,
        description="How long a finished job keeps delivering its buffered callbacks (and "
        "buffered MLflow data) before its process exits anyway.",
    )
    tracking_start_wait_s: float = Field(
        default=0.0,
        ge=0,
        description="Wait this long for the MLflow run id before `started` is sent (0: do not "
        "wait; later events carry the id once MLflow has created the run).",
    )
    tracking_flush_s: float = Field(
        default=30.0,
        ge=0,
        description="At the end of a job, wait this long for buffered MLflow data before the "
        "final callback (which then says whether tracking is complete).",
    )
    tracking_max_backoff_s: float = Field(default=20.0, gt=0)
    sigterm_budget_s: float = Field(
        default=25.0,
        ge=0,
        description="After SIGTERM: time a job gets for each of its final upload and its "
        "callback delivery, so it ends inside shutdown_timeout_s.",
    )
    shutdown_timeout_s: float = Field(
        default=90.0, gt=0, description="Server shutdown: wait this long for job children."
    )

    def resolved_torch_threads(self) -> int:
        """Threads torch should use; Ultralytics alone would leave one core idle."""
        return self.torch_threads or os.cpu_count() or 1

    def child_env(self) -> dict[str, str]:
        """These settings as `TRAINER_*` variables: a job child sees exactly what the server saw."""
        values = self.model_dump(mode="json", exclude_none=True)
        return {f"{ENV_PREFIX}{key.upper()}": str(value) for key, value in values.items()}
