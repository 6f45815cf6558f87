"""A complete, minimal plugin to copy: a tiny CNN classifier in plain PyTorch.

Copy this file into your own package, rename the class and `name`, replace the model and the
loop, then run it against the stand-in backend:

    python -m trainer_runner.standin --plugin mypkg.myplugin:MyPlugin

See docs/plugins.md for the contract each method must keep.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, cast

from trainer_runner.errors import JobCancelled, UserError
from trainer_runner.plugins.base import ExportResult, JobContext
from trainer_runner.plugins.spec import HyperParam, PluginSpec
from trainer_runner.schemas import StartJobRequest
from trainer_runner.validation import confusion_matrix_doc, per_class_accuracy

SPEC = PluginSpec(
    name="template",
    description="Template plugin: a tiny CNN classifier (copy me).",
    tasks={"classify": ("tiny-cnn",)},
    hyperparameters=(
        HyperParam("epochs", "int", 3, 1, 100),
        HyperParam("imgsz", "int", 32, 8, 256),
        HyperParam("batch", "int", 16, 1, 256),
        HyperParam("lr0", "float", 0.01, 1e-5, 1.0),
        HyperParam("seed", "int", 0, 0, 2**31 - 1),
    ),
    export_formats=(),
)


class TemplatePlugin:
    name = "template"
    spec = SPEC

    def validate(self, config: StartJobRequest) -> None:
        # Runs in the HTTP server: check the request only, import nothing heavy.
        SPEC.check_task_and_hyperparameters(config.task, config.hyperparameters)
        SPEC.check_model(config.task, config.model)

    def train(self, ctx: JobContext) -> None:
        import torch

        from trainer_runner.plugins.timm_plugin import FolderDataset, _evaluate

        torch.set_num_threads(ctx.torch_threads)
        hyper = {**SPEC.defaults("classify"), **ctx.spec.hyperparameters}
        torch.manual_seed(int(hyper["seed"]))
        mean, std = [0.5] * 3, [0.25] * 3
        imgsz, nc = int(hyper["imgsz"]), len(ctx.classes)
        train = FolderDataset(ctx.dataset_root / "train", imgsz, mean, std, 0.5)
        val = FolderDataset(ctx.dataset_root / "val", imgsz, mean, std, 0.0)
        train_dl: Any = torch.utils.data.DataLoader(
            cast(Any, train), batch_size=int(hyper["batch"]), shuffle=True
        )
        val_dl: Any = torch.utils.data.DataLoader(cast(Any, val), batch_size=int(hyper["batch"]))
        model = _tiny_cnn(nc)
        start = 0
        if ctx.resume_checkpoint is not None:  # resume: continue after the saved epoch
            state = torch.load(ctx.resume_checkpoint, map_location="cpu", weights_only=False)
            model.load_state_dict(state["model"])
            start = int(state["epoch"]) + 1
        optimizer = torch.optim.SGD(model.parameters(), lr=float(hyper["lr0"]), momentum=0.9)
        loss_fn = torch.nn.CrossEntropyLoss()
        weights = ctx.run_dir / "weights"
        weights.mkdir(parents=True, exist_ok=True)
        # Declare outputs: the runner uploads these when the job ends.
        ctx.artifacts.update(last_checkpoint=weights / "last.pt", best_checkpoint=weights / "best.pt")
        epochs = int(hyper["epochs"])
        for epoch in range(start, epochs):
            ctx.epoch = epoch  # heartbeats report it
            began, total, seen = time.perf_counter(), 0.0, 0
            model.train()
            for images, targets in train_dl:
                if ctx.is_cancelled():  # check after every batch: cancel stops within one
                    raise JobCancelled("cancel requested")
                optimizer.zero_grad()
                loss = loss_fn(model(images), targets)
                loss.backward()
                optimizer.step()
                total, seen = total + float(loss) * len(targets), seen + len(targets)
            result = _evaluate(model, val_dl, loss_fn, torch.device("cpu"), False, nc)
            state = {
                "framework": "template",
                "classes": ctx.classes,
                "imgsz": imgsz,
                "model": model.state_dict(),
                "epoch": epoch,
            }
            torch.save(state, weights / "last.pt")
            torch.save(state, weights / "best.pt")
            ctx.on_checkpoint(weights / "last.pt")  # uploaded at once: a crash loses one epoch
            cm = confusion_matrix_doc(result["matrix"], ctx.classes, background=False)
            ctx.on_epoch(
                epoch,
                epochs,
                {
                    "train_loss": total / max(seen, 1),
                    "val_loss": result["loss"],
                    "top1": result["top1"],
                    "epoch_time_s": time.perf_counter() - began,
                },
                {
                    "per_class": {"headline": "accuracy", "classes": per_class_accuracy(cm)},
                    "confusion_matrix": cm,
                },
            )

    def load_model(self, checkpoint: Path, device: str) -> Any:
        return _TemplateModel(checkpoint)

    def export(self, checkpoint: Path, formats: list[str], out_dir: Path, sample: Any) -> list[ExportResult]:
        raise UserError("the template plugin exports nothing")


class _TemplateModel:
    task = "classify"

    def __init__(self, checkpoint: Path) -> None:
        import torch

        state = torch.load(checkpoint, map_location="cpu", weights_only=False)
        self.classes, self.imgsz = list(state["classes"]), int(state["imgsz"])
        self.model = _tiny_cnn(len(self.classes))
        self.model.load_state_dict(state["model"])
        self.model.eval()

    def predict(self, image: Any, conf: float) -> dict[str, Any]:
        import torch

        from trainer_runner.plugins.timm_plugin import _to_tensor

        with torch.no_grad():
            x = _to_tensor(image, self.imgsz, [0.5] * 3, [0.25] * 3).unsqueeze(0)
            probs = torch.softmax(self.model(x), dim=1)[0].tolist()
        order = sorted(range(len(probs)), key=lambda i: -probs[i])
        return {
            "probabilities": [
                {"class_id": i, "class_name": self.classes[i], "score": probs[i]} for i in order
            ]
        }

    def predict_many(self, images: list[Any], conf: float) -> list[dict[str, Any]]:
        """One image at a time: a new plugin may batch later (see LoadedModel.predict_many)."""
        return [self.predict(image, conf) for image in images]


def _tiny_cnn(nc: int) -> Any:
    import torch

    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 16, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(16, 32, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
        torch.nn.Linear(32, nc),
    )
