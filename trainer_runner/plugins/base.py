"""The framework plugin interface: what a plugin gets from the job and what it must do.

A plugin knows one framework (Ultralytics, timm, ...). The job runner does everything around
it: dataset download, callbacks, uploads, MLflow, cancel flags. So a plugin only turns a local
dataset into checkpoints and reports epochs through the context.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from trainer_runner.schemas import StartJobRequest


@dataclass
class JobContext:
    """Everything a plugin needs for one attempt; hooks call back into the job runner."""

    spec: StartJobRequest
    work_dir: Path  # the attempt's scratch folder; the plugin may write anywhere below it
    cache_dir: Path  # shared by all jobs of this trainer: framework config and caches
    run_dir: Path  # where the framework writes its run (checkpoints, results.csv)
    data_yaml: Path
    classes: list[str]
    device: str  # resolved torch device: "cpu" or "cuda:0"
    torch_threads: int
    resume_checkpoint: Path | None
    is_cancelled: Callable[[], bool]
    on_epoch: Callable[[int, int, dict[str, float]], None]  # (epoch, total_epochs, metrics)
    on_checkpoint: Callable[[Path], None]  # a resumable last checkpoint was just written
    # Filled by the plugin: logical artifact name -> local path (uploaded if it exists).
    artifacts: dict[str, Path] = field(default_factory=dict)
    final_metrics: dict[str, float] = field(default_factory=dict)
    epoch: int | None = None  # epoch in progress, for heartbeats


class TrainerPlugin(Protocol):
    """One framework. `validate` runs in the HTTP server, so it must not import heavy libraries."""

    name: str

    def validate(self, config: StartJobRequest) -> None:
        """Raise `UserError` when the request cannot work with this framework."""

    def train(self, ctx: JobContext) -> None:
        """Train to completion; raise `JobCancelled` when `ctx.is_cancelled()` turns true."""


def resolve_device(requested: str) -> str:
    """Map the protocol's `auto | cpu | cuda` to a torch device name."""
    import torch

    if requested == "cpu":
        return "cpu"
    if torch.cuda.is_available():
        return "cuda:0"
    if requested == "cuda":
        raise RuntimeError("device 'cuda' was requested but this trainer sees no GPU")
    return "cpu"
