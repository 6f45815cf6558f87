"""Per-image predictions of finished jobs, judged against the ground truth (pure: no I/O).

The trainer stores, at the end of a job, each val/test image's predictions and ground truth
(`artifacts/predictions/{split}.json`, see docs/trainer-protocol.md). This module turns one such
document into what the prediction views need, once per job:

- **detection / segmentation**: each prediction is a true positive (`tp`) when it overlaps a
  not yet matched object of the same class by IoU >= `IOU_THRESHOLD` (highest score first), else
  a false positive (`fp`); each object no prediction matched is `missed`.
- **confusion cells** `(predicted, true)`, as Ultralytics' confusion matrix counts them (class
  agnostic matching by IoU; `background` for a false detection's true side and for a missed
  object's predicted side), so a cell of the job page's matrix can list its images.
- **classification**: the top class against the label.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

IOU_THRESHOLD = 0.5
BACKGROUND = "background"


def iou_matrix(a: Sequence[Sequence[float]], b: Sequence[Sequence[float]]) -> np.ndarray:
    """IoU of every box of `a` with every box of `b` (`[x1, y1, x2, y2]`), shape (len a, len b)."""
    if not len(a) or not len(b):
        return np.zeros((len(a), len(b)))
    x = np.asarray(a, dtype=np.float64)[:, None, :]
    y = np.asarray(b, dtype=np.float64)[None, :, :]
    w = np.clip(np.minimum(x[..., 2], y[..., 2]) - np.maximum(x[..., 0], y[..., 0]), 0, None)
    h = np.clip(np.minimum(x[..., 3], y[..., 3]) - np.maximum(x[..., 1], y[..., 1]), 0, None)
    inter = w * h
    area_x = (x[..., 2] - x[..., 0]) * (x[..., 3] - x[..., 1])
    area_y = (y[..., 2] - y[..., 0]) * (y[..., 3] - y[..., 1])
    union = area_x + area_y - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def match_detections(
    truth: Sequence[dict[str, Any]],
    predictions: Sequence[dict[str, Any]],
    iou_threshold: float = IOU_THRESHOLD,
    ious: np.ndarray | None = None,
) -> tuple[list[bool], list[bool]]:
    """(is each prediction a true positive, is each truth object matched), class-aware and
    greedy by descending score: the usual way detections are counted right or wrong. `ious`:
    the predictions x truth IoU matrix when the caller has it already."""
    if ious is None:
        ious = iou_matrix([p["box"] for p in predictions], [t["box"] for t in truth])
    matched_truth = [False] * len(truth)
    tp = [False] * len(predictions)
    order = sorted(range(len(predictions)), key=lambda i: -float(predictions[i].get("score", 0.0)))
    for i in order:
        best, best_iou = -1, iou_threshold
        for j, obj in enumerate(truth):
            if matched_truth[j] or obj["class_id"] != predictions[i]["class_id"]:
                continue
            if ious[i, j] >= best_iou:
                best, best_iou = j, float(ious[i, j])
        if best >= 0:
            matched_truth[best] = True
            tp[i] = True
    return tp, matched_truth


def confusion_pairs(
    truth: Sequence[dict[str, Any]],
    predictions: Sequence[dict[str, Any]],
    classes: Sequence[str],
    iou_threshold: float = IOU_THRESHOLD,
    ious: np.ndarray | None = None,
) -> list[tuple[str, str]]:
    """The (predicted, true) cells one image adds to a detection confusion matrix: pairs matched
    class-agnostically by IoU (highest first), then `(background, A)` for each object left and
    `(B, background)` for each prediction left."""
    if ious is None:
        ious = iou_matrix([p["box"] for p in predictions], [t["box"] for t in truth])
    pairs: list[tuple[str, str]] = []
    used_p: set[int] = set()
    used_t: set[int] = set()
    candidates = sorted(
        ((float(ious[i, j]), i, j) for i in range(len(predictions)) for j in range(len(truth))),
        reverse=True,
    )
    for value, i, j in candidates:
        if value < iou_threshold:
            break
        if i in used_p or j in used_t:
            continue
        used_p.add(i)
        used_t.add(j)
        pairs.append((classes[predictions[i]["class_id"]], classes[truth[j]["class_id"]]))
    pairs += [(BACKGROUND, classes[t["class_id"]]) for j, t in enumerate(truth) if j not in used_t]
    pairs += [(classes[p["class_id"]], BACKGROUND) for i, p in enumerate(predictions) if i not in used_p]
    return pairs


@dataclass(frozen=True)
class JudgedImage:
    """One image as one model saw it, ready to draw: every box carries its verdict."""

    path: str
    width: int
    height: int
    # detect: {"class_id", "score", "box", "verdict": "tp" | "fp"}; classify: top-k, best first
    predictions: list[dict[str, Any]]
    # detect: {"class_id", "box", "verdict": "found" | "missed"}; classify: [{"class_id"}]
    truth: list[dict[str, Any]]
    cells: frozenset[tuple[str, str]]  # confusion-matrix cells this image counts in
    wrong: bool  # any false positive or miss (detect), top class is not the label (classify)
    classes_seen: frozenset[int]  # in the truth or the predictions: for the class filter
    signature: tuple[int, ...]  # what the model said, to tell whether models disagree


@dataclass(frozen=True)
class JudgedSet:
    """A job's prediction document, judged once (the views keep it cached)."""

    task: str
    split: str
    classes: list[str]
    total_images: int
    images: dict[str, JudgedImage] = field(default_factory=dict)  # by manifest path, in order


def judge(doc: dict[str, Any], min_score: float = 0.0) -> JudgedSet:
    """Judge every image of a trainer predictions document (`min_score`: predictions below it
    are left out, as if the model had not made them)."""
    task = str(doc["task"])
    classes = [str(c) for c in doc["classes"]]
    out = JudgedSet(task, str(doc["split"]), classes, int(doc.get("total_images", len(doc["images"]))))
    for record in doc["images"]:
        preds = [p for p in record["predictions"] if float(p.get("score", 0.0)) >= min_score]
        judged = (
            _judge_classification(record, preds, classes)
            if task == "classify"
            else _judge_detection(record, preds, classes)
        )
        out.images[judged.path] = judged
    return out


def _judge_classification(
    record: dict[str, Any], preds: list[dict[str, Any]], classes: list[str]
) -> JudgedImage:
    truth_id = int(record["truth"]["class_id"])
    top = int(preds[0]["class_id"]) if preds else None
    verdicts = [{**p, "verdict": "tp" if int(p["class_id"]) == truth_id else "fp"} for p in preds]
    predicted = classes[top] if top is not None else BACKGROUND
    return JudgedImage(
        path=str(record["path"]),
        width=int(record["width"]),
        height=int(record["height"]),
        predictions=verdicts,
        truth=[{"class_id": truth_id}],
        cells=frozenset({(predicted, classes[truth_id])}),
        wrong=top != truth_id,
        classes_seen=frozenset({truth_id} | ({top} if top is not None else set())),
        signature=(top if top is not None else -1,),
    )


def _judge_detection(record: dict[str, Any], preds: list[dict[str, Any]], classes: list[str]) -> JudgedImage:
    truth = list(record["truth"])
    ious = iou_matrix([p["box"] for p in preds], [t["box"] for t in truth])  # once for both
    tp, found = match_detections(truth, preds, ious=ious)
    predictions = [{**p, "verdict": "tp" if ok else "fp"} for p, ok in zip(preds, tp, strict=True)]
    objects = [{**t, "verdict": "found" if ok else "missed"} for t, ok in zip(truth, found, strict=True)]
    return JudgedImage(
        path=str(record["path"]),
        width=int(record["width"]),
        height=int(record["height"]),
        predictions=predictions,
        truth=objects,
        cells=frozenset(confusion_pairs(truth, preds, classes, ious=ious)),
        wrong=not all(tp) or not all(found),
        classes_seen=frozenset(int(p["class_id"]) for p in [*truth, *preds]),
        # Which objects it found and how many false detections, by class.
        signature=tuple(sorted(int(p["class_id"]) for p in preds))
        + (-1,)
        + tuple(j for j, ok in enumerate(found) if ok),
    )


def filter_paths(
    sets: Sequence[JudgedSet],
    *,
    disagree: bool = False,
    class_id: int | None = None,
    wrong_in: int | None = None,
) -> list[str]:
    """Paths of the images every set holds, in the first set's order, that pass the filters:
    `disagree` (the models said different things, or one was right and another wrong),
    `class_id` (in the truth or any model's predictions), `wrong_in` (index of the set that got
    the image wrong)."""
    if not sets:
        return []
    common = [p for p in sets[0].images if all(p in s.images for s in sets[1:])]
    out: list[str] = []
    for path in common:
        seen = [s.images[path] for s in sets]
        if disagree and len({(j.signature, j.wrong) for j in seen}) < 2:
            continue
        if class_id is not None and not any(class_id in j.classes_seen for j in seen):
            continue
        if wrong_in is not None and not seen[wrong_in].wrong:
            continue
        out.append(path)
    return out


def cell_paths(judged: JudgedSet, predicted: str, true: str) -> list[str]:
    """Images behind one confusion-matrix cell (true `true` predicted as `predicted`;
    `predicted == background` lists missed objects of `true`)."""
    cell = (predicted, true)
    return [path for path, image in judged.images.items() if cell in image.cells]
