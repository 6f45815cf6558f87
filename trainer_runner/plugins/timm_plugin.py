"""timm plugin: image classification with any `timm.create_model` architecture.

A plain PyTorch loop (AdamW or SGD, cosine schedule), AMP only on CUDA, no pretrained weights
(`pretrained=False`: nothing is downloaded). Checkpoints are dicts with `"framework": "timm"`, so
`/predict` and `/export` recognise them.
"""

from __future__ import annotations

import csv
import logging
import math
import random
import time
from pathlib import Path
from typing import Any, cast

from trainer_runner.errors import JobCancelled
from trainer_runner.exports import ALL_FORMATS, FORMATS, export_torch_module, package, parity, run_exported
from trainer_runner.plugins.base import ExportResult, JobContext, primary_device
from trainer_runner.plugins.spec import FieldError, HyperParam, PluginSpec
from trainer_runner.schemas import StartJobRequest
from trainer_runner.validation import confusion_matrix_doc, per_class_accuracy

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"}
SPEC = PluginSpec(
    name="timm",
    description="timm image classifiers (any timm.create_model name), trained from scratch.",
    tasks={
        "classify": (
            "resnet18",
            "resnet34",
            "resnet50",
            "efficientnet_b0",
            "mobilenetv3_small_100",
            "mobilenetv3_large_100",
            "convnext_atto",
            "vit_tiny_patch16_224",
        )
    },
    any_model=True,
    export_formats=ALL_FORMATS,
    hyperparameters=(
        HyperParam("epochs", "int", 5, 1, 1000, help="passes over the training set"),
        HyperParam("imgsz", "int", 224, 16, 1024, help="square input size in pixels"),
        HyperParam("batch", "int", 32, 1, 1024),
        HyperParam("lr0", "float", 0.001, 1e-6, 1.0, help="peak learning rate (cosine decay)"),
        HyperParam("weight_decay", "float", 0.05, 0.0, 1.0),
        HyperParam("optimizer", "str", "adamw", choices=("adamw", "sgd")),
        HyperParam("label_smoothing", "float", 0.0, 0.0, 0.5),
        HyperParam("fliplr", "float", 0.5, 0.0, 1.0, help="horizontal flip probability"),
        HyperParam("seed", "int", 0, 0, 2**31 - 1),
    ),
)


class TimmPlugin:
    """Classification with timm models and a plain PyTorch loop."""

    name = "timm"
    spec = SPEC

    def validate(self, config: StartJobRequest) -> None:
        SPEC.check_task_and_hyperparameters(config.task, config.hyperparameters)
        if config.model in SPEC.tasks[config.task]:
            return
        import timm  # only for names beyond the list; imports torch once in this process

        if not timm.is_model(config.model):
            raise FieldError(
                ("model",),
                f"{config.model!r} is not a timm model name (timm.list_models() has them)",
                list(SPEC.tasks[config.task]),
            )

    # -- training ------------------------------------------------------------------------------
    def train(self, ctx: JobContext) -> None:
        import timm
        import torch

        torch.set_num_threads(ctx.torch_threads)
        hyper = {**SPEC.defaults("classify"), **ctx.spec.hyperparameters}
        _seed(int(hyper["seed"]))
        if "," in ctx.device:
            # Data-parallel timm (torch DDP, one process per GPU) is not built yet: train on the
            # first GPU and say so (docs/fleet.md, "Multi-GPU jobs").
            log.warning("timm trains on one GPU; the other GPUs of this job stay idle")
        device = torch.device(primary_device(ctx.device))
        use_amp = device.type == "cuda"
        imgsz = int(hyper["imgsz"])

        start_epoch, best_top1, state = 0, -1.0, None
        if ctx.resume_checkpoint is not None:
            state = torch.load(ctx.resume_checkpoint, map_location="cpu", weights_only=False)
            hyper = state["hyperparameters"]
            imgsz = int(state["imgsz"])
            start_epoch, best_top1 = int(state["epoch"]) + 1, float(state["best_top1"])
        model_name = state["model_name"] if state else ctx.spec.model
        classes = list(ctx.classes)
        model = timm.create_model(model_name, pretrained=False, num_classes=len(classes))
        cfg = model.pretrained_cfg or {}
        mean = list(cfg.get("mean", (0.485, 0.456, 0.406)))
        std = list(cfg.get("std", (0.229, 0.224, 0.225)))
        if state:
            model.load_state_dict(state["model"])
        elif ctx.init_weights is not None:
            # Fine-tuning: every tensor that fits; a different class count keeps a fresh head.
            from trainer_runner.weights import adapt_state, load_state_dict

            kind = "safetensors" if ctx.init_weights.suffix == ".safetensors" else "timm"
            loaded, skipped = adapt_state(model, load_state_dict(ctx.init_weights, kind)[0])
            log.info("fine-tuning", extra={"tensors_loaded": loaded, "tensors_skipped": skipped[:10]})
        model.to(device)

        train_ds = FolderDataset(ctx.dataset_root / "train", imgsz, mean, std, float(hyper["fliplr"]))
        val_ds = FolderDataset(ctx.dataset_root / "val", imgsz, mean, std, 0.0)
        generator = torch.Generator().manual_seed(int(hyper["seed"]))
        # FolderDataset is a map-style dataset (len + getitem) without importing torch at module load.
        train_dl: Any = torch.utils.data.DataLoader(
            cast(Any, train_ds), batch_size=int(hyper["batch"]), shuffle=True, generator=generator
        )
        val_dl: Any = torch.utils.data.DataLoader(cast(Any, val_ds), batch_size=int(hyper["batch"]))

        epochs = int(hyper["epochs"])
        lr0, wd = float(hyper["lr0"]), float(hyper["weight_decay"])
        if hyper["optimizer"] == "sgd":
            optimizer: Any = torch.optim.SGD(model.parameters(), lr=lr0, momentum=0.9, weight_decay=wd)
        else:
            optimizer = torch.optim.AdamW(model.parameters(), lr=lr0, weight_decay=wd)
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)
        scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
        if state:
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
        loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=float(hyper["label_smoothing"]))

        weights = ctx.run_dir / "weights"
        weights.mkdir(parents=True, exist_ok=True)
        results_csv = ctx.run_dir / "results.csv"
        ctx.artifacts.update(
            last_checkpoint=weights / "last.pt",
            best_checkpoint=weights / "best.pt",
            results_csv=results_csv,
        )
        meta = {
            "framework": "timm",
            "task": "classify",
            "model_name": model_name,
            "classes": classes,
            "imgsz": imgsz,
            "mean": mean,
            "std": std,
            "hyperparameters": hyper,
        }
        log.info(
            "timm training",
            extra={"model": model_name, "train_images": len(train_ds), "val_images": len(val_ds)},
        )
        for epoch in range(start_epoch, epochs):
            ctx.epoch = epoch
            started = time.perf_counter()
            model.train()
            total_loss, seen = 0.0, 0
            for images, targets in train_dl:
                if ctx.is_cancelled():
                    raise JobCancelled("cancel requested")
                images, targets = images.to(device), targets.to(device)
                optimizer.zero_grad(set_to_none=True)
                with torch.autocast(device.type, enabled=use_amp):
                    loss = loss_fn(model(images), targets)
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
                total_loss += float(loss) * len(targets)
                seen += len(targets)
            lr = optimizer.param_groups[0]["lr"]
            scheduler.step()
            train_time = time.perf_counter() - started
            val = _evaluate(model, val_dl, loss_fn, device, use_amp, len(classes))
            metrics = {
                "train_loss": total_loss / max(seen, 1),
                "val_loss": val["loss"],
                "top1": val["top1"],
                "top5": val["top5"],
                "lr": lr,
                "epoch_time_s": time.perf_counter() - started,
                "images_per_s": seen / train_time if train_time > 0 else 0.0,
            }
            cm = confusion_matrix_doc(val["matrix"], classes, background=False)
            validation = {
                "per_class": {"headline": "accuracy", "classes": per_class_accuracy(cm)},
                "confusion_matrix": cm,
            }
            improved = metrics["top1"] > best_top1
            best_top1 = max(best_top1, metrics["top1"])
            checkpoint = {
                **meta,
                "model": model.state_dict(),
                "epoch": epoch,
                "epochs": epochs,
                "best_top1": best_top1,
                "metrics": metrics,
            }
            if improved:
                torch.save({k: v for k, v in checkpoint.items()}, weights / "best.pt")
                ctx.final_metrics = {k: metrics[k] for k in ("val_loss", "top1", "top5")}
            checkpoint.update(optimizer=optimizer.state_dict(), scheduler=scheduler.state_dict())
            torch.save(checkpoint, weights / "last.pt")
            ctx.on_checkpoint(weights / "last.pt")
            _append_csv(results_csv, epoch, metrics)
            ctx.on_epoch(epoch, epochs, {k: v for k, v in metrics.items() if math.isfinite(v)}, validation)

    # -- inference and export ------------------------------------------------------------------
    def load_model(self, checkpoint: Path, device: str) -> TimmModel:
        return TimmModel(checkpoint, device)

    def export(self, checkpoint: Path, formats: list[str], out_dir: Path, sample: Any) -> list[ExportResult]:
        import torch

        loaded = TimmModel(checkpoint, "cpu")
        x = loaded.preprocess(sample)
        with torch.no_grad():
            expected = loaded.model(x).numpy()
        out_dir.mkdir(parents=True, exist_ok=True)
        results: list[ExportResult] = []
        for name in formats:
            fmt = FORMATS.get(name)
            if fmt is None:
                raise FieldError(("formats",), f"unsupported format {name!r}", list(SPEC.export_formats))
            target = out_dir / fmt.filename
            if fmt.base == "onnx":
                torch.onnx.export(
                    loaded.model,
                    (x,),
                    str(target),
                    input_names=["images"],
                    output_names=["logits"],
                    opset_version=17,
                    dynamo=False,
                )
            elif fmt.base == "torchscript":
                with torch.no_grad():
                    traced = torch.jit.trace(loaded.model, x)  # type: ignore[no-untyped-call]
                    traced.save(str(target))
            else:
                package(export_torch_module(loaded.model, x, fmt, out_dir / "work"), fmt, out_dir)
            results.append(
                ExportResult(name, target, parity(expected, run_exported(fmt, target, x), fmt.tolerance))
            )
        return results


class TimmModel:
    """A timm checkpoint loaded for inference (eval mode)."""

    task = "classify"

    def __init__(self, checkpoint: Path, device: str) -> None:
        import timm
        import torch

        state = torch.load(checkpoint, map_location="cpu", weights_only=False)
        self.classes: list[str] = list(state["classes"])
        self.imgsz = int(state["imgsz"])
        self.mean, self.std = state["mean"], state["std"]
        self.device = torch.device(device)
        self.model = timm.create_model(state["model_name"], pretrained=False, num_classes=len(self.classes))
        self.model.load_state_dict(state["model"])
        self.model.eval().to(self.device)

    def preprocess(self, image: Any) -> Any:
        return _to_tensor(image, self.imgsz, self.mean, self.std).unsqueeze(0).to(self.device)

    def predict(self, image: Any, conf: float = 0.0) -> dict[str, Any]:
        return self.predict_many([image], conf)[0]

    def predict_many(self, images: list[Any], conf: float = 0.0) -> list[dict[str, Any]]:
        import torch

        with torch.no_grad():
            batch = torch.cat([self.preprocess(image) for image in images])
            found = torch.softmax(self.model(batch).float(), dim=1).cpu()
        results = []
        for probs in found:
            order = torch.argsort(probs, descending=True).tolist()
            results.append(
                {
                    "probabilities": [
                        {"class_id": i, "class_name": self.classes[i], "score": float(probs[i])}
                        for i in order
                    ]
                }
            )
        return results


class FolderDataset:
    """`root/{class_folder}/image`: folders sorted give class ids (the dataset step ensures it)."""

    def __init__(self, root: Path, imgsz: int, mean: list[float], std: list[float], flip: float):
        folders = sorted(p for p in root.iterdir() if p.is_dir())
        self.samples = [
            (path, label)
            for label, folder in enumerate(folders)
            for path in sorted(folder.iterdir())
            if path.suffix.lower() in IMAGE_SUFFIXES
        ]
        self.imgsz, self.mean, self.std, self.flip = imgsz, mean, std, flip

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[Any, int]:
        from PIL import Image, ImageOps

        path, label = self.samples[index]
        with Image.open(path) as opened:
            image = opened.convert("RGB")
            if self.flip and random.random() < self.flip:
                image = ImageOps.mirror(image)
            return _to_tensor(image, self.imgsz, self.mean, self.std), label


def _to_tensor(image: Any, imgsz: int, mean: list[float], std: list[float]) -> Any:
    import numpy as np
    import torch

    array = np.asarray(image.convert("RGB").resize((imgsz, imgsz)), dtype=np.float32) / 255.0
    tensor = torch.from_numpy(array.transpose(2, 0, 1).copy())
    return (tensor - torch.tensor(mean).view(3, 1, 1)) / torch.tensor(std).view(3, 1, 1)


def _evaluate(model: Any, loader: Any, loss_fn: Any, device: Any, use_amp: bool, nc: int) -> dict[str, Any]:
    import torch

    model.eval()
    matrix = torch.zeros((nc, nc), dtype=torch.int64)  # [predicted][true]
    total_loss, top1, top5, seen = 0.0, 0, 0, 0
    k = min(5, nc)
    with torch.no_grad():
        for images, targets in loader:
            images, targets = images.to(device), targets.to(device)
            with torch.autocast(device.type, enabled=use_amp):
                logits = model(images).float()
            total_loss += float(loss_fn(logits, targets)) * len(targets)
            best = logits.topk(k, dim=1).indices
            top1 += int((best[:, 0] == targets).sum())
            top5 += int((best == targets[:, None]).any(dim=1).sum())
            seen += len(targets)
            for p, t in zip(best[:, 0].cpu().tolist(), targets.cpu().tolist(), strict=True):
                matrix[p, t] += 1
    n = max(seen, 1)
    return {
        "loss": total_loss / n,
        "top1": top1 / n,
        "top5": top5 / n,
        "matrix": matrix.tolist(),
    }


def _append_csv(path: Path, epoch: int, metrics: dict[str, float]) -> None:
    new = not path.exists()
    with path.open("a", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["epoch", *metrics])
        if new:
            writer.writeheader()
        writer.writerow({"epoch": epoch, **metrics})


def _seed(seed: int) -> None:
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
