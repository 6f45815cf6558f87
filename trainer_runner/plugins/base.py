"""The framework plugin interface: what a plugin gets from the job and what it must do.

A plugin knows one framework (Ultralytics, timm, ...). The job runner does everything around
it: dataset download, callbacks, uploads, MLflow, cancel flags. So a plugin only turns a local
dataset into checkpoints and reports epochs through the context.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from trainer_runner.plugins.spec import PluginSpec
from trainer_runner.schemas import StartJobRequest

# (epoch, total_epochs, metrics, validation) where validation maps an artifact name
# ("per_class", "confusion_matrix", "pr_curve") to a JSON-able document, or is None.
EpochHook = Callable[[int, int, dict[str, float], dict[str, Any] | None], None]


@dataclass
class JobContext:
    """Everything a plugin needs for one attempt; hooks call back into the job runner."""

    spec: StartJobRequest
    work_dir: Path  # the attempt's scratch folder; the plugin may write anywhere below it
    cache_dir: Path  # shared by all jobs of this trainer: framework config and caches
    run_dir: Path  # where the framework writes its run (checkpoints, results.csv)
    data_yaml: Path  # detect/segment: YOLO data.yaml
    dataset_root: Path  # classify: ImageFolder root with train/ and val/
    classes: list[str]
    device: str  # resolved torch device: "cpu" or "cuda:0"
    torch_threads: int
    resume_checkpoint: Path | None
    is_cancelled: Callable[[], bool]
    on_epoch: EpochHook
    on_checkpoint: Callable[[Path], None]  # a resumable last checkpoint was just written
    # v1.5: weights to start from (spec.init_weights, downloaded); None trains from scratch.
    init_weights: Path | None = None
    # Filled by the plugin: logical artifact name -> local path (uploaded if it exists).
    artifacts: dict[str, Path] = field(default_factory=dict)
    final_metrics: dict[str, float] = field(default_factory=dict)
    epoch: int | None = None  # epoch in progress, for heartbeats


class LoadedModel(Protocol):
    """A trained model in memory, ready for `POST /predict` (kept in an LRU cache)."""

    task: str
    classes: list[str]

    def predict(self, image: Any, conf: float) -> dict[str, Any]:
        """Predictions for one RGB `PIL.Image`: `{"boxes": [...]}` (detect/segment, boxes in
        pixels `[x1, y1, x2, y2]`, `class_id`, `class_name`, `score`) or
        `{"probabilities": [...]}` (classify: `class_id`, `class_name`, `score`, best first)."""

    def predict_many(self, images: list[Any], conf: float) -> list[dict[str, Any]]:
        """`predict` for several images of one size in one call of the model, one result each, in
        order: a batch inference job's throughput on a CPU about doubles at 8 per call. The same
        size keeps each image's letterboxing what it is alone."""


@dataclass
class ExportResult:
    """One exported file and how closely its output matched the PyTorch model's."""

    format: str
    path: Path
    parity: dict[str, Any]  # {"ok", "max_abs_diff", "tolerance", "output_shape"}


class TrainerPlugin(Protocol):
    """One framework. `validate` runs in the HTTP server, so it must not import heavy libraries."""

    name: str
    spec: PluginSpec

    def validate(self, config: StartJobRequest) -> None:
        """Raise `UserError` (or `FieldError`, naming the field) when the request cannot work."""

    def train(self, ctx: JobContext) -> None:
        """Train to completion; raise `JobCancelled` when `ctx.is_cancelled()` turns true."""

    def load_model(self, checkpoint: Path, device: str) -> LoadedModel:
        """Load a checkpoint this plugin wrote, for inference."""

    def export(self, checkpoint: Path, formats: list[str], out_dir: Path, sample: Any) -> list[ExportResult]:
        """Write each format under `out_dir` and compare its output on `sample` (a PIL image)."""


def resolve_device(requested: str, gpus: int = 0) -> str:
    """Map the protocol's `auto | cpu | cuda` to a torch device name. The executor made only the
    job's own GPUs visible (`CUDA_VISIBLE_DEVICES`), so they are always `cuda:0..k-1`; a job that
    asked for k > 1 GPUs gets them all ("cuda:0,1"), for data-parallel training."""
    import torch

    if requested == "cpu":
        return "cpu"
    if torch.cuda.is_available():
        count = min(max(gpus, 1), torch.cuda.device_count())
        return "cuda:" + ",".join(str(i) for i in range(count))
    if requested == "cuda":
        raise RuntimeError("device 'cuda' was requested but this trainer sees no GPU")
    return "cpu"


def primary_device(device: str) -> str:
    """The first device of a multi-GPU device ("cuda:0,1" -> "cuda:0"), for code that runs on one."""
    return device.split(",")[0]
