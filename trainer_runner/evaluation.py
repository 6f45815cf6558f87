"""The end of a successful job: test-set metrics of `best.pt` and per-image predictions.

Kept apart from the epoch loop of `job.py` on purpose: it runs once, after training, on the
best checkpoint, and a failure here never fails a trained job (the model is what matters).

- **Test metrics** (protocol v1.5): when the dataset version has a `test` split, the plugin's
  optional `evaluate(ctx, checkpoint, split)` scores `best.pt` on it with the framework's own
  validator (Ultralytics: the same mAP/top-k as validation). A plugin without it gets top-1/top-5
  computed here from the predictions (classification only). Names are the validation names
  prefixed `test/` (`test/map50_95`, `test/top1`).
- **Predictions** (`artifacts/predictions/{val,test}.json`): for at most
  `predictions_max_images` images of each split, the model's predictions and the ground truth,
  addressed by the image's `path` in the dataset manifest, so the backend can draw both over the
  dataset's own image. Boxes are pixels `[x1, y1, x2, y2]` of the original image.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trainer_runner.dataset import PreparedDataset

log = logging.getLogger(__name__)

PREDICTION_SPLITS = ("val", "test")
PREDICTION_CONF = 0.25  # the frameworks' usual display threshold; scores are kept for the UI
TOP_K = 5  # classification: classes kept per image
TEST_PREFIX = "test/"
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff"}
PREDICTIONS_FORMAT = 1


@dataclass(frozen=True)
class LabelledImage:
    """One prepared image and what the manifest says is in it."""

    local: Path
    path: str  # the image's path in the dataset manifest (and archive)
    label: int | None  # classify
    rows: list[list[float]]  # detect/segment: normalised [cls, cx, cy, w, h] or [cls, x1, y1, ...]


def labelled_images(dataset: PreparedDataset, task: str, split: str) -> list[LabelledImage]:
    """The prepared images of `split`, in manifest order, each tied back to its manifest entry.

    The prepared file names start with the manifest index (`000012_name.jpg`,
    `trainer_runner.dataset`), which is how a local file finds its manifest path again.
    """
    manifest = json.loads((dataset.root.parent / "manifest.json").read_text())
    entries: list[dict[str, Any]] = manifest["images"]
    folder = dataset.root / split if task == "classify" else dataset.root / "images" / split
    if not folder.is_dir():
        return []
    found: list[tuple[int, LabelledImage]] = []
    for local in folder.rglob("*"):
        if local.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        index = int(local.name.split("_", 1)[0])
        entry = entries[index]
        if task == "classify":
            item = LabelledImage(local, entry["path"], int(entry["label"]), [])
        else:
            rows = [[float(v) for v in row] for row in entry.get("labels", [])]
            item = LabelledImage(local, entry["path"], None, rows)
        found.append((index, item))
    return [item for _, item in sorted(found, key=lambda pair: pair[0])]


def truth_boxes(rows: list[list[float]], width: int, height: int, task: str) -> list[dict[str, Any]]:
    """Ground-truth labels in the prediction format: pixel `[x1, y1, x2, y2]` per object
    (a polygon's bounding box, with the polygon kept for segmentation)."""
    out: list[dict[str, Any]] = []
    for row in rows:
        cls, coords = int(row[0]), row[1:]
        if task == "detect":
            cx, cy, w, h = coords
            box = [(cx - w / 2) * width, (cy - h / 2) * height, (cx + w / 2) * width, (cy + h / 2) * height]
            item: dict[str, Any] = {"class_id": cls, "box": [round(v, 2) for v in box]}
        else:
            xs = [x * width for x in coords[0::2]]
            ys = [y * height for y in coords[1::2]]
            item = {
                "class_id": cls,
                "box": [round(min(xs), 2), round(min(ys), 2), round(max(xs), 2), round(max(ys), 2)],
                "polygon": [[round(x, 1), round(y, 1)] for x, y in zip(xs, ys, strict=True)],
            }
        out.append(item)
    return out


def predict_images(
    model: Any, images: list[LabelledImage], task: str, should_stop: Callable[[], bool]
) -> Iterator[dict[str, Any]]:
    """One record per image: size, ground truth and the model's predictions (slim: no names,
    the document carries the class list once)."""
    from PIL import Image

    for item in images:
        if should_stop():
            return
        with Image.open(item.local) as opened:
            image = opened.convert("RGB")
        result = model.predict(image, PREDICTION_CONF)
        record: dict[str, Any] = {"path": item.path, "width": image.width, "height": image.height}
        if task == "classify":
            record["truth"] = {"class_id": item.label}
            record["predictions"] = [
                {"class_id": int(p["class_id"]), "score": round(float(p["score"]), 4)}
                for p in result.get("probabilities", [])[:TOP_K]
            ]
        else:
            record["truth"] = truth_boxes(item.rows, image.width, image.height, task)
            record["predictions"] = [
                {
                    "class_id": int(b["class_id"]),
                    "score": round(float(b["score"]), 4),
                    "box": b["box"],
                    **({"polygon": b["polygon"]} if b.get("polygon") else {}),
                }
                for b in result.get("boxes", [])
            ]
        yield record


def topk_metrics(records: list[dict[str, Any]]) -> dict[str, float]:
    """Classification top-1 / top-5 accuracy from prediction records (the fallback metrics of a
    plugin without `evaluate`)."""
    if not records:
        return {}
    top1 = top5 = 0
    for record in records:
        truth = record["truth"]["class_id"]
        ranked = [p["class_id"] for p in record["predictions"]]
        top1 += int(ranked[:1] == [truth])
        top5 += int(truth in ranked[:5])
    n = len(records)
    return {"top1": top1 / n, "top5": top5 / n}


def prefixed(metrics: dict[str, float]) -> dict[str, float]:
    """Validation names -> test names (`map50` -> `test/map50`)."""
    return {f"{TEST_PREFIX}{name}": float(value) for name, value in metrics.items()}


def predictions_doc(
    task: str, split: str, classes: list[str], total: int, records: list[dict[str, Any]]
) -> dict[str, Any]:
    """The stored document: what the backend's prediction views read."""
    return {
        "format": PREDICTIONS_FORMAT,
        "task": task,
        "split": split,
        "classes": classes,
        "conf": PREDICTION_CONF,
        "total_images": total,  # images in the split; `images` holds at most the cap
        "images": records,
    }


@dataclass
class Evaluation:
    """What the end-of-job evaluation produced."""

    test_metrics: dict[str, float]
    documents: dict[str, dict[str, Any]]  # split -> predictions document


def evaluate(
    plugin: Any,
    ctx: Any,
    dataset: PreparedDataset,
    best: Path,
    device: str,
    max_images: int,
    should_stop: Callable[[], bool],
) -> Evaluation:
    """Test metrics (when there is a test split) and prediction documents for val and test.

    `ctx` is the job's `JobContext` (the plugin's `evaluate` reuses its data paths and threads).
    """
    task = ctx.spec.task
    result = Evaluation(test_metrics={}, documents={})
    has_test = dataset.counts.get("test", 0) > 0
    if has_test and hasattr(plugin, "evaluate"):
        try:
            result.test_metrics = prefixed(plugin.evaluate(ctx, best, "test"))
        except Exception as exc:  # scores are a bonus on a trained model
            log.warning("test evaluation failed", extra={"error": str(exc)})
    model = plugin.load_model(best, device)
    for split in PREDICTION_SPLITS:
        if not dataset.counts.get(split, 0):
            continue
        images = labelled_images(dataset, task, split)
        # Fallback test metrics need every test image, not only the stored ones.
        fallback = split == "test" and not result.test_metrics and task == "classify"
        chosen = images if fallback else images[:max_images]
        records = list(predict_images(model, chosen, task, should_stop))
        if fallback:
            result.test_metrics = prefixed(topk_metrics(records))
        if max_images > 0:
            result.documents[split] = predictions_doc(
                task, split, dataset.classes, len(images), records[:max_images]
            )
    log.info(
        "end-of-job evaluation",
        extra={
            "test_metrics": result.test_metrics,
            "predicted": {s: len(d["images"]) for s, d in result.documents.items()},
        },
    )
    return result
