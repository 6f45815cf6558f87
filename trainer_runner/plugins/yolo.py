"""Ultralytics YOLO plugin (detect, segment, classify), set up to train fully offline.

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
from trainer_runner.exports import ALL_FORMATS, FORMATS, package, parity, run_exported
from trainer_runner.plugins.base import ExportResult, JobContext
from trainer_runner.plugins.spec import FieldError, HyperParam, PluginSpec
from trainer_runner.schemas import StartJobRequest
from trainer_runner.validation import confusion_matrix_doc, per_class_accuracy, pr_curve_doc

log = logging.getLogger(__name__)

DETECT_LIKE = ("detect", "segment")
SPATIAL = DETECT_LIKE  # hyperparameters that only make sense with boxes/masks
SPEC = PluginSpec(
    name="ultralytics",
    description="Ultralytics YOLO, models built from YAML (no pretrained weights offline).",
    tasks={
        "detect": ("yolo11n.yaml", "yolo11s.yaml", "yolo11m.yaml", "yolov8n.yaml", "yolov8s.yaml"),
        "segment": ("yolo11n-seg.yaml", "yolo11s-seg.yaml", "yolov8n-seg.yaml"),
        "classify": ("yolo11n-cls.yaml", "yolo11s-cls.yaml", "yolov8n-cls.yaml"),
    },
    export_formats=ALL_FORMATS,
    hyperparameters=(
        HyperParam("epochs", "int", 5, 1, 1000, help="passes over the training set"),
        HyperParam("imgsz", "int", 320, 32, 2048, help="square input size in pixels"),
        HyperParam("batch", "int", 16, 1, 512),
        HyperParam("lr0", "float", 0.01, 1e-6, 1.0, help="initial learning rate"),
        HyperParam("lrf", "float", 0.01, 1e-4, 1.0, help="final lr as a fraction of lr0"),
        HyperParam("momentum", "float", 0.937, 0.0, 0.999),
        HyperParam("weight_decay", "float", 0.0005, 0.0, 0.1),
        HyperParam("warmup_epochs", "float", 3.0, 0.0, 20.0),
        HyperParam(
            "optimizer",
            "str",
            "auto",
            choices=("auto", "SGD", "Adam", "AdamW", "NAdam", "RAdam", "RMSProp"),
        ),
        HyperParam("cos_lr", "bool", False, help="cosine learning-rate schedule"),
        HyperParam("patience", "int", 100, 1, 1000, help="epochs without improvement to stop"),
        HyperParam("seed", "int", 0, 0, 2**31 - 1),
        HyperParam("deterministic", "bool", True),
        HyperParam("fliplr", "float", 0.5, 0.0, 1.0, help="horizontal flip probability"),
        HyperParam("hsv_h", "float", 0.015, 0.0, 1.0),
        HyperParam("hsv_s", "float", 0.7, 0.0, 1.0),
        HyperParam("hsv_v", "float", 0.4, 0.0, 1.0),
        HyperParam("mosaic", "float", 1.0, 0.0, 1.0, tasks=SPATIAL),
        HyperParam("mixup", "float", 0.0, 0.0, 1.0, tasks=SPATIAL),
        HyperParam("close_mosaic", "int", 10, 0, 1000, tasks=SPATIAL),
        HyperParam("degrees", "float", 0.0, 0.0, 180.0, tasks=SPATIAL),
        HyperParam("translate", "float", 0.1, 0.0, 1.0, tasks=SPATIAL),
        HyperParam("scale", "float", 0.5, 0.0, 1.0, tasks=SPATIAL),
        HyperParam("overlap_mask", "bool", True, tasks=("segment",)),
        HyperParam("dropout", "float", 0.0, 0.0, 1.0, tasks=("classify",)),
        HyperParam("erasing", "float", 0.4, 0.0, 0.9, tasks=("classify",)),
        HyperParam("plots", "bool", False, help="Ultralytics' own PNG plots in the run folder"),
    ),
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
    "metrics/precision(M)": "mask_precision",
    "metrics/recall(M)": "mask_recall",
    "metrics/mAP50(M)": "mask_map50",
    "metrics/mAP50-95(M)": "mask_map50_95",
    "metrics/accuracy_top1": "top1",
    "metrics/accuracy_top5": "top5",
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


def import_ultralytics(config_dir: Path, threads: int) -> Any:
    """Import ultralytics offline, its logs routed to ours; returns the `YOLO` class."""
    prepare_offline(config_dir, threads)
    import torch

    torch.set_num_threads(threads)
    # Ultralytics binds its log handler to sys.stdout at import; catch that plain text.
    with contextlib.redirect_stdout(io.StringIO()) as import_output:
        import ultralytics
        import ultralytics.utils as ultralytics_utils
        import ultralytics.utils.torch_utils as torch_utils
        from ultralytics import YOLO
    _route_ultralytics_logs()
    for line in import_output.getvalue().splitlines():
        logging.getLogger("ultralytics").info(line)
    ultralytics.settings.update(DISABLED_INTEGRATIONS)
    # select_device() resets torch threads to this value (cpu_count - 1 by default).
    torch_utils.NUM_THREADS = threads
    # Progress bars are plain text on stdout; only they read this flag, logs stay at INFO.
    ultralytics_utils.VERBOSE = False
    return YOLO


class UltralyticsPlugin:
    """YOLO detection, segmentation and classification, models built from YAML."""

    name = "ultralytics"
    spec = SPEC

    def __init__(self, config_dir: Path | None = None) -> None:
        self.config_dir = config_dir  # for export/predict in the server; jobs use ctx.cache_dir

    def validate(self, config: StartJobRequest) -> None:
        SPEC.check_task_and_hyperparameters(config.task, config.hyperparameters)
        if config.resume_from_uri is None:
            if not config.model.endswith((".yaml", ".yml")):
                raise FieldError(
                    ("model",),
                    f"{config.model!r} must be a model YAML such as 'yolo11n.yaml' "
                    "(pretrained weights cannot be downloaded here)",
                    list(SPEC.tasks[config.task]),
                )
            SPEC.check_model(config.task, config.model)

    def preload(self, cache_dir: Path, threads: int) -> None:
        """Import Ultralytics (and torch) as `train` will, before the job is known."""
        import_ultralytics(cache_dir / "ultralytics-config", threads)

    def train(self, ctx: JobContext) -> None:
        yolo_cls = import_ultralytics(ctx.cache_dir / "ultralytics-config", ctx.torch_threads)
        skip_flops_count()
        from ultralytics.cfg import get_cfg

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
        task = ctx.spec.task
        data = ctx.dataset_root if task == "classify" else ctx.data_yaml
        common: dict[str, Any] = {
            "data": str(data.resolve()),
            "device": "cpu" if ctx.device == "cpu" else ctx.device.split(":")[-1],
            "save_dir": str(ctx.run_dir.resolve()),
            "exist_ok": True,
            "workers": 0,
            "plots": hyper.pop("plots", False),
        }
        if ctx.resume_checkpoint is not None:
            model = yolo_cls(str(ctx.resume_checkpoint))
            self._add_callbacks(model, ctx)
            model.train(resume=True, **common)
        else:
            model = yolo_cls(ctx.spec.model, task=task)
            if ctx.init_weights is not None:
                # Fine-tuning: the YAML's model takes every tensor of the checkpoint whose name and
                # shape fit; train() then rebuilds it for the dataset's class count and carries
                # the fitting tensors over again, so a different class count gets a fresh head.
                from trainer_runner.weights import load_ultralytics

                module, _ckpt = load_ultralytics(ctx.init_weights)
                model.load(module)
                log.info("fine-tuning", extra={"init_weights": ctx.spec.init_weights})
            self._add_callbacks(model, ctx)
            model.train(
                **hyper,
                **common,
                pretrained=ctx.init_weights is not None,
                amp=False,
                project=str(ctx.run_dir.parent.resolve()),
                name=ctx.run_dir.name,
            )

    def evaluate(self, ctx: JobContext, checkpoint: Path, split: str) -> dict[str, float]:
        """Score `checkpoint` on `split` with Ultralytics' own validator: the same metrics, under
        the same names, as the per-epoch validation."""
        yolo_cls = import_ultralytics(ctx.cache_dir / "ultralytics-config", ctx.torch_threads)
        data = ctx.dataset_root if ctx.spec.task == "classify" else ctx.data_yaml
        model = yolo_cls(str(checkpoint))
        metrics = model.val(
            data=str(data.resolve()),
            split=split,
            device="cpu" if ctx.device == "cpu" else ctx.device.split(":")[-1].split(",")[0],
            workers=0,
            plots=False,
            verbose=False,
            project=str(ctx.work_dir.resolve() / "runs"),
            name=f"eval-{split}",
            exist_ok=True,
        )
        return normalise_metrics(dict(metrics.results_dict))

    @staticmethod
    def _add_callbacks(model: Any, ctx: JobContext) -> None:
        ended: dict[str, int] = {}
        task = ctx.spec.task

        def on_train_epoch_start(trainer: Any) -> None:
            ctx.epoch = int(trainer.epoch)

        def on_train_batch_end(trainer: Any) -> None:
            # An exception (not trainer.stop) keeps last.pt resumable.
            if ctx.is_cancelled():
                raise JobCancelled("cancel requested")

        def on_train_epoch_end(trainer: Any) -> None:
            ended["epoch"] = int(trainer.epoch)

        def on_val_start(validator: Any) -> None:
            if task in DETECT_LIKE and validator.training:
                _collect_confusion_matrix_without_plots(validator)

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
            epoch_time = float(getattr(trainer, "epoch_time", 0.0) or 0.0)
            metrics["epoch_time_s"] = epoch_time
            n_images = len(getattr(trainer.train_loader, "dataset", []) or [])
            if epoch_time > 0 and n_images:
                metrics["images_per_s"] = n_images / epoch_time
            try:
                validation = _validation_docs(trainer.validator, ctx.classes, task)
            except Exception as exc:  # artifacts are a bonus; never fail training for them
                log.warning("validation artifacts unavailable", extra={"error": str(exc)})
                validation = None
            ctx.on_epoch(int(trainer.epoch), int(trainer.epochs), metrics, validation)

        for event, fn in {
            "on_train_epoch_start": on_train_epoch_start,
            "on_train_batch_end": on_train_batch_end,
            "on_train_epoch_end": on_train_epoch_end,
            "on_val_start": on_val_start,
            "on_model_save": on_model_save,
            "on_fit_epoch_end": on_fit_epoch_end,
        }.items():
            model.add_callback(event, fn)

    # -- inference and export (run in the server process) -------------------------------------
    def _yolo(self, threads: int | None = None) -> Any:
        config_dir = self.config_dir or Path(os.environ.get("TMPDIR", "/tmp")) / "vtp-ultralytics"
        return import_ultralytics(config_dir, threads or os.cpu_count() or 1)

    def load_model(self, checkpoint: Path, device: str) -> UltralyticsModel:
        return UltralyticsModel(self._yolo()(str(checkpoint)), device)

    def export(self, checkpoint: Path, formats: list[str], out_dir: Path, sample: Any) -> list[ExportResult]:
        import torch

        out_dir.mkdir(parents=True, exist_ok=True)
        local = out_dir / "model.pt"
        shutil.copyfile(checkpoint, local)  # Ultralytics writes exports next to the weights
        yolo = self._yolo()(str(local))
        imgsz = _train_imgsz(yolo)
        x = _to_tensor(sample, imgsz)
        reference = yolo.model.float().eval()
        with torch.no_grad():
            expected = _first(reference(x)).numpy()
        results: list[ExportResult] = []
        for name in formats:
            fmt = FORMATS[name]
            kwargs: dict[str, Any] = {"format": fmt.base, "imgsz": imgsz, "device": "cpu", "half": fmt.half}
            if fmt.base == "onnx":
                kwargs.update(simplify=False, dynamic=False)  # onnxslim is not installed
            target = package(Path(yolo.export(**kwargs)), fmt, out_dir)
            results.append(
                ExportResult(name, target, parity(expected, run_exported(fmt, target, x), fmt.tolerance))
            )
        return results


class UltralyticsModel:
    """A YOLO checkpoint loaded for `POST /predict`."""

    def __init__(self, yolo: Any, device: str) -> None:
        self.yolo = yolo
        self.device = device
        self.task = str(yolo.task)
        names = yolo.names
        self.classes = [str(names[i]) for i in sorted(names)]
        self.imgsz = _train_imgsz(yolo)

    def predict(self, image: Any, conf: float) -> dict[str, Any]:
        return self.predict_many([image], conf)[0]

    def predict_many(self, images: list[Any], conf: float) -> list[dict[str, Any]]:
        found = self.yolo.predict(images, conf=conf, imgsz=self.imgsz, device=self.device, verbose=False)
        return [self._result(result) for result in found]

    def _result(self, result: Any) -> dict[str, Any]:
        if self.task == "classify":
            probs = result.probs.data.float().cpu().tolist()
            order = sorted(range(len(probs)), key=lambda i: -probs[i])
            return {
                "probabilities": [
                    {"class_id": i, "class_name": self.classes[i], "score": float(probs[i])} for i in order
                ]
            }
        boxes = []
        polygons = result.masks.xy if result.masks is not None else None
        xyxy = result.boxes.xyxy.cpu().tolist()
        for i, (cls, score) in enumerate(
            zip(result.boxes.cls.cpu().tolist(), result.boxes.conf.cpu().tolist(), strict=True)
        ):
            item: dict[str, Any] = {
                "class_id": int(cls),
                "class_name": self.classes[int(cls)],
                "score": float(score),
                "box": [round(float(v), 2) for v in xyxy[i]],
            }
            if polygons is not None:
                item["polygon"] = [[round(float(x), 1), round(float(y), 1)] for x, y in polygons[i]]
            boxes.append(item)
        boxes.sort(key=lambda b: -b["score"])
        return {"boxes": boxes}


def _train_imgsz(yolo: Any) -> int:
    args = getattr(yolo, "ckpt", None) or {}
    imgsz = (args.get("train_args") or {}).get("imgsz") or yolo.overrides.get("imgsz") or 640
    return int(imgsz if isinstance(imgsz, int) else max(imgsz))


def _to_tensor(sample: Any, imgsz: int) -> Any:
    """A PIL image as the 1x3xHxW float tensor in 0..1 both the model and its exports take."""
    import numpy as np
    import torch

    array = np.asarray(sample.convert("RGB").resize((imgsz, imgsz)), dtype=np.float32) / 255.0
    return torch.from_numpy(array.transpose(2, 0, 1).copy()).unsqueeze(0)


def _first(output: Any) -> Any:
    while isinstance(output, list | tuple):
        output = output[0]
    return output.detach().float().cpu()


def _collect_confusion_matrix_without_plots(validator: Any) -> None:
    """Make the per-epoch validator fill its confusion matrix without drawing any PNGs.

    Ultralytics fills the matrix only when `plots` is on, and `plots` also renders sample
    batches, curves and matrices with matplotlib (seconds per epoch). Turn the flag on for this
    validator and switch the drawing off on the instance.
    """
    if getattr(validator, "_vtp_patched", False):
        validator.args.plots = True
        return
    validator.args.plots = True
    validator.plot_val_samples = lambda *a, **k: None
    validator.plot_predictions = lambda *a, **k: None
    init_metrics = validator.init_metrics

    def init_metrics_quiet(model: Any) -> None:
        init_metrics(model)
        validator.confusion_matrix.plot = lambda *a, **k: None
        process = validator.metrics.process
        if getattr(process, "_vtp_quiet", False):
            return

        def process_quiet(*args: Any, **kwargs: Any) -> Any:
            kwargs["plot"] = False
            return process(*args, **kwargs)

        process_quiet._vtp_quiet = True  # type: ignore[attr-defined]
        validator.metrics.process = process_quiet

    validator.init_metrics = init_metrics_quiet
    validator._vtp_patched = True


def _validation_docs(validator: Any, classes: list[str], task: str) -> dict[str, Any] | None:
    """Per-class scores, confusion matrix and PR curve of the epoch's validation."""
    if validator is None or getattr(validator, "confusion_matrix", None) is None:
        return None
    if task == "classify":
        cm = confusion_matrix_doc(validator.confusion_matrix.matrix, classes, background=False)
        return {
            "per_class": {"headline": "accuracy", "classes": per_class_accuracy(cm)},
            "confusion_matrix": cm,
        }
    metrics = validator.metrics
    box = metrics.box
    index = [int(c) for c in metrics.ap_class_index]
    rows: dict[str, dict[str, float]] = {}
    for i, c in enumerate(index):
        row = {
            "ap50_95": float(box.ap[i]),
            "ap50": float(box.ap50[i]),
            "precision": float(box.p[i]),
            "recall": float(box.r[i]),
        }
        if task == "segment":
            row.update(mask_ap50_95=float(metrics.seg.ap[i]), mask_ap50=float(metrics.seg.ap50[i]))
        rows[classes[c]] = row
    docs: dict[str, Any] = {
        "per_class": {"headline": "ap50_95", "classes": rows},
        "confusion_matrix": confusion_matrix_doc(validator.confusion_matrix.matrix, classes, background=True),
    }
    prec = getattr(box, "prec_values", None)
    if prec is not None and len(prec) == len(index):
        docs["pr_curve"] = pr_curve_doc(
            list(box.px), {classes[c]: list(prec[i]) for i, c in enumerate(index)}, iou=0.5
        )
    return docs


def skip_flops_count() -> None:
    """Leave the GFLOPs figure out of Ultralytics' model summaries in this (job) process.

    Each summary (the model the trainer builds, the fused best.pt of the final evaluation)
    counts FLOPs by running the model at 640 px under a profiler: about a second of both cores
    each on a small CPU, several seconds of a short job, for one number in a log line that
    nothing reads. The summary line is still logged, without it.
    """
    import ultralytics.utils.torch_utils as torch_utils

    torch_utils.get_flops = _no_flops


def _no_flops(model: Any, imgsz: Any = 640) -> float:
    return 0.0  # model_info leaves the figure out for 0


def _route_ultralytics_logs() -> None:
    """Send Ultralytics' plain-text logger through the JSON handlers of the root logger."""
    logger = logging.getLogger("ultralytics")
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
    logger.propagate = True
