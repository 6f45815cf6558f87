"""Judging stored predictions against the ground truth: IoU, TP/FP/missed, confusion cells,
the compare view's filters. Pure functions, so every case is written out by hand."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from services.domain.predictions import (
    BACKGROUND,
    cell_paths,
    confusion_pairs,
    filter_paths,
    iou_matrix,
    judge,
    match_detections,
)

CLASSES = ["cat", "dog"]


def _box(cls: int, box: list[float], score: float | None = None) -> dict[str, Any]:
    item: dict[str, Any] = {"class_id": cls, "box": box}
    if score is not None:
        item["score"] = score
    return item


def test_iou_of_known_boxes() -> None:
    ious = iou_matrix([[0, 0, 10, 10], [20, 20, 30, 30]], [[0, 0, 10, 10], [5, 0, 15, 10], [50, 50, 60, 60]])
    assert ious.shape == (2, 3)
    assert ious[0, 0] == pytest.approx(1.0)
    assert ious[0, 1] == pytest.approx(50 / 150)  # half overlaps: 50 shared of 150 in all
    assert ious[0, 2] == 0.0 and ious[1].max() == 0.0
    assert iou_matrix([], [[0, 0, 1, 1]]).shape == (0, 1)


def test_match_is_class_aware_greedy_by_score_and_one_to_one() -> None:
    truth = [_box(0, [0, 0, 10, 10]), _box(1, [50, 50, 60, 60]), _box(0, [100, 100, 110, 110])]
    predictions = [
        _box(0, [1, 1, 10, 10], 0.6),  # a duplicate of the next one, lower score: fp
        _box(0, [0, 0, 10, 10], 0.9),  # tp
        _box(0, [50, 50, 60, 60], 0.8),  # right place, wrong class: fp, the dog is missed
        _box(1, [200, 200, 210, 210], 0.7),  # nothing there: fp
    ]
    tp, found = match_detections(truth, predictions)
    assert tp == [False, True, False, False]
    assert found == [True, False, False]


def test_iou_below_the_threshold_is_not_a_match() -> None:
    tp, found = match_detections([_box(0, [0, 0, 10, 10])], [_box(0, [6, 0, 16, 10], 0.9)])
    assert tp == [False] and found == [False]


def test_confusion_pairs_follow_the_matrix_layout() -> None:
    truth = [_box(0, [0, 0, 10, 10]), _box(1, [50, 50, 60, 60])]
    predictions = [_box(1, [0, 0, 10, 10], 0.9), _box(1, [200, 200, 210, 210], 0.5)]
    pairs = confusion_pairs(truth, predictions, CLASSES)
    assert sorted(pairs) == sorted([("dog", "cat"), (BACKGROUND, "dog"), ("dog", BACKGROUND)])


def _doc(task: str, images: list[dict[str, Any]]) -> dict[str, Any]:
    return {"task": task, "split": "val", "classes": CLASSES, "total_images": len(images), "images": images}


def _image(path: str, truth: Any, predictions: list[dict[str, Any]]) -> dict[str, Any]:
    return {"path": path, "width": 100, "height": 100, "truth": truth, "predictions": predictions}


def test_judge_detection_marks_verdicts_and_cells() -> None:
    doc = _doc(
        "detect",
        [
            _image("a.jpg", [_box(0, [0, 0, 10, 10])], [_box(0, [0, 0, 10, 10], 0.9)]),
            _image("b.jpg", [_box(1, [0, 0, 10, 10])], []),
            _image("c.jpg", [], [_box(0, [0, 0, 10, 10], 0.2)]),
        ],
    )
    judged = judge(doc)
    a, b, c = (judged.images[p] for p in ("a.jpg", "b.jpg", "c.jpg"))
    assert not a.wrong and a.predictions[0]["verdict"] == "tp" and a.truth[0]["verdict"] == "found"
    assert b.wrong and b.truth[0]["verdict"] == "missed" and b.cells == {(BACKGROUND, "dog")}
    assert c.wrong and c.predictions[0]["verdict"] == "fp"
    assert cell_paths(judged, BACKGROUND, "dog") == ["b.jpg"]
    assert cell_paths(judged, "cat", "cat") == ["a.jpg"]
    # A score floor drops c's low-confidence false positive: c is right then.
    assert not judge(doc, min_score=0.5).images["c.jpg"].wrong


def test_judge_classification_and_the_filters() -> None:
    truth = {"class_id": 0}
    right = [{"class_id": 0, "score": 0.9}, {"class_id": 1, "score": 0.1}]
    wrong = [{"class_id": 1, "score": 0.8}, {"class_id": 0, "score": 0.2}]
    model_a = judge(
        _doc(
            "classify",
            [_image("x", truth, right), _image("y", truth, wrong), _image("z", {"class_id": 1}, wrong)],
        )
    )
    model_b = judge(
        _doc(
            "classify",
            [_image("x", truth, right), _image("y", truth, right), _image("z", {"class_id": 1}, wrong)],
        )
    )
    assert model_a.images["y"].cells == {("dog", "cat")}
    assert cell_paths(model_a, "dog", "cat") == ["y"]
    assert filter_paths([model_a, model_b]) == ["x", "y", "z"]
    assert filter_paths([model_a, model_b], disagree=True) == ["y"]
    assert filter_paths([model_a, model_b], wrong_in=0) == ["y"]
    assert filter_paths([model_a, model_b], wrong_in=1) == []
    assert filter_paths([model_a, model_b], class_id=1) == ["y", "z"]  # z's label, y's prediction
    assert filter_paths([]) == []


def test_only_images_every_model_has_are_compared() -> None:
    one = judge(_doc("classify", [_image("x", {"class_id": 0}, [{"class_id": 0, "score": 1.0}])]))
    two = judge(_doc("classify", [_image("q", {"class_id": 0}, [{"class_id": 0, "score": 1.0}])]))
    assert filter_paths([one, two]) == []
    assert isinstance(iou_matrix([[0, 0, 1, 1]], [[0, 0, 1, 1]]), np.ndarray)
