"""Ultralytics YOLO plugin (task `detect`), set up to train fully offline.

Ultralytics reaches for the network in several places (fonts, hub sync, AMP check weights,
pretrained weights, coco8 fallback); the settings here close each of them.
"""

from __future__ import annotations

import contextlib
import io
import logging
import math
import os
import shutil
from pathlib import Path
from typing import Any

from trainer_runner.errors import JobCancelled, UserError
from trainer_runner.plugins.base import JobContext
from trainer_runner.schemas import StartJobRequest

log = logging.getLogger(__name__)

TASKS = frozenset({"detect"})
# Keys the runner sets itself: a user value would break offline training or the file layout.
RESERVED_KEYS = frozenset(
    {
        "data",
        "model",
        "task",
        "mode",
        "project",
        "name",
        "save_dir",
        "exist_ok",
        "resume",
        "device",
        "workers",
        "pretrained",
        "amp",
    }
)
OFFLINE_ENV = {
    "YOLO_OFFLINE": "1",
    "YOLO_AUTOINSTALL": "false",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "HF_HUB_OFFLINE": "1",
}
DISABLED_INTEGRATIONS = {
    "sync": False,
    "mlflow": False,
    "clearml": False,
    "comet": False,
    "dvc": False,
    "raytune": False,
    "tensorboard": False,
    "wandb": False,
}
METRIC_NAMES = {
    "metrics/precision(B)": "precision",
    "metrics/recall(B)": "recall",
    "metrics/mAP50(B)": "map50",
    "metrics/mAP50-95(B)": "map50_95",
}


def normalise_metrics(raw: dict[str, Any]) -> dict[str, float]:
    """Ultralytics metric keys -> protocol names (`train/box_loss` -> `train_box_loss`, ...)."""
    out: dict[str, float] = {}
    for key, value in raw.items():
        name = METRIC_NAMES.get(key)
        if name is None and key.startswith(("train/", "val/")):
            name = key.replace("/", "_")
        if name is None:
            continue
        number = float(value)
        if math.isfinite(number):  # NaN/inf are not JSON; a missing point beats a broken chart
            out[name] = number
    return out


def prepare_offline(config_dir: Path, threads: int) -> None:
    """Environment that must exist before ultralytics (and torch) are imported."""
    os.environ.update(OFFLINE_ENV)
    os.environ["YOLO_CONFIG_DIR"] = str(config_dir)
    os.environ["OMP_NUM_THREADS"] = str(threads)  # ultralytics would set 1 when unset
    fonts = config_dir / "Ultralytics"
    fonts.mkdir(parents=True, exist_ok=True)
    import matplotlib

    dejavu = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
    for name in ("Arial.ttf", "Arial.Unicode.ttf"):  # else the dataset check downloads Arial
        if not (fonts / name).exists():
            tmp = fonts / f".{name}.{os.getpid()}"
            shutil.copyfile(dejavu, tmp)
            os.replace(tmp, fonts / name)  # atomic: concurrent jobs never see half a font


class UltralyticsPlugin:
    """YOLO detection with Ultralytics, models built from YAML (no weight downloads)."""

    name = "ultralytics"

    def validate(self, config: StartJobRequest) -> None:
        if config.task not in TASKS:
            raise UserError(
                f"ultralytics plugin supports tasks {sorted(TASKS)}, not {config.task!r}"
            )
        if config.resume_from_uri is None and not config.model.endswith((".yaml", ".yml")):
            raise UserError(
                f"model {config.model!r} must be a model YAML such as 'yolo11n.yaml' "
                "(pretrained weights cannot be downloaded here)"
            )
        reserved = sorted(RESERVED_KEYS & set(config.hyperparameters))
        if reserved:
            raise UserError(f"hyperparameters {reserved} are set by the trainer and not allowed")
        epochs = config.hyperparameters.get("epochs", 1)
        if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
            raise UserError(f"hyperparameter epochs must be a whole number >= 1, not {epochs!r}")

    def train(self, ctx: JobContext) -> None:
        prepare_offline(ctx.cache_dir / "ultralytics-config", ctx.torch_threads)
        import torch

        torch.set_num_threads(ctx.torch_threads)
        # Ultralytics binds its log handler to sys.stdout at import; catch that plain text.
        with contextlib.redirect_stdout(io.StringIO()) as import_output:
            import ultralytics
            import ultralytics.utils as ultralytics_utils
            import ultralytics.utils.torch_utils as torch_utils
            from ultralytics import YOLO
            from ultralytics.cfg import get_cfg
        _route_ultralytics_logs()
        for line in import_output.getvalue().splitlines():
            logging.getLogger("ultralytics").info(line)

        ultralytics.settings.update(DISABLED_INTEGRATIONS)
        # select_device() resets torch threads to this value (cpu_count - 1 by default).
        torch_utils.NUM_THREADS = ctx.torch_threads
        # Progress bars are plain text on stdout; only they read this flag, logs stay at INFO.
        ultralytics_utils.VERBOSE = False

        hyper = dict(ctx.spec.hyperparameters)
        try:
            get_cfg(overrides=hyper)
        except (SyntaxError, TypeError, ValueError) as exc:
            raise UserError(f"invalid hyperparameters: {exc}") from exc

        weights = ctx.run_dir / "weights"
        ctx.artifacts.update(
            last_checkpoint=weights / "last.pt",
            best_checkpoint=weights / "best.pt",
            results_csv=ctx.run_dir / "results.csv",
        )
        common: dict[str, Any] = {
            "data": str(ctx.data_yaml.resolve()),
            "device": "cpu" if ctx.device == "cpu" else ctx.device.split(":")[-1],
            "save_dir": str(ctx.run_dir.resolve()),
            "exist_ok": True,
            "workers": 0,
            "plots": hyper.pop("plots", False),
        }
        if ctx.resume_checkpoint is not None:
            model = YOLO(str(ctx.resume_checkpoint))
            self._add_callbacks(model, ctx)
            model.train(resume=True, **common)
        else:
            model = YOLO(ctx.spec.model, task=ctx.spec.task)
            self._add_callbacks(model, ctx)
            model.train(
                **hyper,
                **common,
                pretrained=False,
                amp=False,
                project=str(ctx.run_dir.parent.resolve()),
                name=ctx.run_dir.name,
            )

    @staticmethod
    def _add_callbacks(model: Any, ctx: JobContext) -> None:
        ended: dict[str, int] = {}

        def on_train_epoch_start(trainer: Any) -> None:
            ctx.epoch = int(trainer.epoch)

        def on_train_batch_end(trainer: Any) -> None:
            # An exception (not trainer.stop) keeps last.pt resumable.
            if ctx.is_cancelled():
                raise JobCancelled("cancel requested")

        def on_train_epoch_end(trainer: Any) -> None:
            ended["epoch"] = int(trainer.epoch)

        def on_model_save(trainer: Any) -> None:
            ctx.on_checkpoint(Path(trainer.last))

        def on_fit_epoch_end(trainer: Any) -> None:
            val = normalise_metrics(dict(trainer.metrics or {}))
            if ended.get("epoch") != int(trainer.epoch):
                # The extra call after the final best.pt evaluation: final metrics, not an epoch.
                ctx.final_metrics = val
                return
            ended.pop("epoch")
            metrics = normalise_metrics(trainer.label_loss_items(trainer.tloss, prefix="train"))
            metrics.update(val)
            lr = (trainer.lr or {}).get("lr/pg0")
            if lr is not None:
                metrics["lr"] = float(lr)
            metrics["epoch_time_s"] = float(getattr(trainer, "epoch_time", 0.0) or 0.0)
            ctx.on_epoch(int(trainer.epoch), int(trainer.epochs), metrics)

        for event, fn in {
            "on_train_epoch_start": on_train_epoch_start,
            "on_train_batch_end": on_train_batch_end,
            "on_train_epoch_end": on_train_epoch_end,
            "on_model_save": on_model_save,
            "on_fit_epoch_end": on_fit_epoch_end,
        }.items():
            model.add_callback(event, fn)


def _route_ultralytics_logs() -> None:
    """Send Ultralytics' plain-text logger through the JSON handlers of the root logger."""
    logger = logging.getLogger("ultralytics")
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
    logger.propagate = True
