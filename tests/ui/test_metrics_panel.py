"""MetricsPanel's labels follow the job's task; few points are drawn as markers (pure, no browser)."""

from __future__ import annotations

import pytest

from components.charts import flatten_points, metrics_figure
from components.metrics_panel import chart_title, per_class_headers, per_class_table

CLASSIFY_EPOCH = {"epoch": 0, "metrics": {"train_loss": 2.3, "val_loss": 2.2, "top1": 0.31, "top5": 0.74}}
DETECT_EPOCH = {
    "epoch": 0,
    "metrics": {"train_box_loss": 1.9, "val_box_loss": 2.0, "map50": 0.1, "map50_95": 0.04},
}


def test_classification_chart_speaks_of_loss_and_accuracy_not_boxes():
    figure = metrics_figure(flatten_points([CLASSIFY_EPOCH]), "classify")
    assert chart_title("classify") == "Loss and accuracy per epoch"
    assert figure.layout.yaxis.title.text == "Loss"
    assert figure.layout.yaxis2.title.text == "Accuracy"
    labels = [trace.name for trace in figure.data]
    assert labels == ["Train loss", "Val loss", "Top-1 accuracy", "Top-5 accuracy"]
    assert not any("box" in label.lower() or "map" in label.lower() for label in labels)
    assert [list(trace.y) for trace in figure.data] == [[2.3], [2.2], [0.31], [0.74]]


@pytest.mark.parametrize(
    ("task", "y_title", "expected"),
    [
        ("detect", "Box loss", {"Train box loss", "Val box loss", "mAP50", "mAP50-95"}),
        ("segment", "Loss (box, mask)", {"Train mask loss", "Val mask loss", "Mask mAP50", "Mask mAP50-95"}),
    ],
)
def test_detection_and_segmentation_charts_speak_of_boxes_and_map(task, y_title, expected):
    figure = metrics_figure([], task)
    assert figure.layout.yaxis.title.text == y_title and figure.layout.yaxis2.title.text == "mAP"
    assert expected <= {trace.name for trace in figure.data}
    assert "mAP" in chart_title(task)


def test_one_epoch_is_drawn_as_visible_markers_in_a_range_around_it():
    figure = metrics_figure(flatten_points([DETECT_EPOCH]), "detect")
    for trace in figure.data:
        assert list(trace.x) == [1]
        assert "markers" in trace.mode and trace.marker.size >= 8
    assert list(figure.layout.xaxis.range) == [0.5, 1.5]


def test_many_epochs_are_lines_without_markers():
    points = [{"epoch": e, "metrics": {"train_loss": 1 / (e + 1)}} for e in range(40)]
    trace = metrics_figure(flatten_points(points), "classify").data[0]
    assert trace.mode == "lines" and len(trace.x) == 40


def test_classification_per_class_table_has_accuracy_and_support_columns():
    doc = {
        "headline": "accuracy",
        "classes": {"3": {"accuracy": 0.5, "support": 8}, "7": {"accuracy": 0.875, "support": 8}},
    }
    assert per_class_headers("classify", doc) == ["Class", "Accuracy", "Support"]
    assert per_class_table("classify", doc) == [["7", "0.875", "8"], ["3", "0.500", "8"]]
    assert per_class_headers("classify") == ["Class", "Accuracy", "Support"], "before any document"


def test_detection_per_class_table_has_ap_columns_best_first():
    doc = {
        "headline": "ap50_95",
        "classes": {
            "circle": {"ap50_95": 0.2, "ap50": 0.4, "precision": 0.5, "recall": 0.6},
            "square": {"ap50_95": 0.5, "ap50": 0.7, "precision": 0.8},
        },
    }
    assert per_class_headers("detect", doc) == ["Class", "AP50-95", "AP50", "Precision", "Recall"]
    assert per_class_table("detect", doc) == [
        ["square", "0.500", "0.700", "0.800", "—"],
        ["circle", "0.200", "0.400", "0.500", "0.600"],
    ]


def test_segmentation_per_class_table_adds_mask_columns():
    doc = {"headline": "ap50_95", "classes": {"a": {"ap50_95": 0.2, "mask_ap50_95": 0.1, "mask_ap50": 0.3}}}
    assert per_class_headers("segment", doc)[-2:] == ["Mask AP50-95", "Mask AP50"]
    assert per_class_table("segment", doc)[0][-2:] == ["0.100", "0.300"]
    assert per_class_table("detect", None) == []
