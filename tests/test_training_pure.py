"""Pure helpers of the training pages and services: catalogue checks, form fields, staleness,
overlays, comparison tables and analytics (no servers)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from components import tokens
from components.training_charts import (
    compare_figure,
    confusion_matrix_figure,
    parallel_figure,
    pr_curve_figure,
)
from services.domain import catalog, experiments
from services.errors import InvalidInput
from state import training_helpers as h

DOC = {
    "frameworks": [
        {
            "name": "ultralytics",
            "any_model": False,
            "export_formats": ["onnx", "torchscript"],
            "tasks": [
                {
                    "name": "detect",
                    "models": ["yolo11n.yaml"],
                    "hyperparameters": [
                        {"name": "epochs", "type": "int", "default": 5, "min": 1, "max": 1000},
                        {"name": "lr0", "type": "float", "default": 0.01, "min": 1e-6, "max": 1.0},
                        {"name": "optimizer", "type": "str", "default": "auto", "choices": ["auto", "SGD"]},
                        {"name": "cos_lr", "type": "bool", "default": False},
                    ],
                }
            ],
        },
        {"name": "timm", "any_model": True, "tasks": [{"name": "classify", "models": ["resnet18"]}]},
    ]
}
CAT = catalog.Catalog(DOC)
SPECS = CAT.hyperparameters("ultralytics", "detect")


def test_unknown_values_name_the_field_and_what_is_allowed() -> None:
    with pytest.raises(InvalidInput, match=r"framework.*allowed: \['ultralytics', 'timm'\]"):
        CAT.framework("keras")
    with pytest.raises(InvalidInput, match=r"task.*allowed: \['detect'\]"):
        CAT.task("ultralytics", "pose")
    with pytest.raises(InvalidInput, match=r"model.*allowed: \['yolo11n.yaml'\]"):
        CAT.check_model("ultralytics", "detect", "yolo99.yaml")
    CAT.check_model("timm", "classify", "convnext_tiny")  # any_model frameworks take other names
    with pytest.raises(InvalidInput, match="momentum_x"):
        catalog.validate_hyperparameters(SPECS, {"momentum_x": 1})


def test_hyperparameters_are_typed_ranged_and_defaulted() -> None:
    clean = catalog.validate_hyperparameters(SPECS, {"epochs": "3", "cos_lr": "true"})
    assert clean == {"epochs": 3, "lr0": 0.01, "optimizer": "auto", "cos_lr": True}
    for bad, message in [
        ({"epochs": 0}, "epochs must be between 1 and 1000"),
        ({"epochs": 2.5}, "epochs must be a whole number"),
        ({"lr0": float("nan")}, "lr0 must be a finite number"),
        ({"optimizer": "Lion"}, "optimizer must be one of"),
        ({"cos_lr": "maybe"}, "cos_lr must be true or false"),
    ]:
        with pytest.raises(InvalidInput, match=message):
            catalog.validate_hyperparameters(SPECS, bad)


def test_form_fields_and_field_errors() -> None:
    fields = {f["name"]: f for f in h.param_fields(SPECS)}
    assert fields["epochs"]["widget"] == "number" and fields["epochs"]["max"] == "1000"
    assert fields["epochs"]["step"] == "1" and fields["lr0"]["step"] == "any"
    assert fields["optimizer"]["widget"] == "select" and fields["cos_lr"]["default"] == "false"
    assert h.param_choices(SPECS)["optimizer"] == ["auto", "SGD"]
    assert h.form_errors(SPECS, {"epochs": "0", "lr0": ""}) == {
        "epochs": "epochs must be between 1 and 1000, got 0"
    }
    assert h.form_hyperparameters(SPECS, {"epochs": " 7 ", "lr0": ""}) == {"epochs": 7}
    assert h.error_field(InvalidInput("model: unknown"), ["epochs"]) == "model"
    assert h.error_field(InvalidInput("epochs must be"), ["epochs"]) == "epochs"


def test_staleness_says_since_when() -> None:
    now = datetime(2026, 1, 1, 12, 0, 30, tzinfo=UTC)
    heard = now - timedelta(seconds=95)
    text = h.staleness("running", heard, None, now)
    assert "1 min 35 s" in text and "11:58:55" in text
    assert h.staleness("running", now - timedelta(seconds=3), None, now) == ""
    assert h.staleness("succeeded", heard, None, now) == ""
    assert h.staleness("running", None, heard.replace(tzinfo=None), now) != ""


def test_stale_in_says_when_the_warning_will_show() -> None:
    """The job page's watcher sleeps until then instead of re-reading a silent job."""
    now = datetime(2026, 1, 1, 12, 0, 30, tzinfo=UTC)
    assert h.stale_in("running", now - timedelta(seconds=3), None, now) == h.STALE_AFTER_S - 3
    assert h.staleness("running", now - timedelta(seconds=h.STALE_AFTER_S), None, now) != ""
    assert h.stale_in("running", now - timedelta(seconds=h.STALE_AFTER_S), None, now) is None
    assert h.stale_in("succeeded", now, None, now) is None
    assert h.stale_in("running", None, None, now) is None


def test_overlays_queue_and_links() -> None:
    result = {
        "width": 200,
        "height": 100,
        "boxes": [{"class_id": 1, "class_name": "cat", "score": 0.9, "box": [20, 10, 120, 60]}],
    }
    assert h.box_overlays(result) == [
        {
            "left": "10.00%",
            "top": "10.00%",
            "width": "50.00%",
            "height": "50.00%",
            "label": "cat 0.90",
            "color": tokens.RUN_PALETTE[1],
        }
    ]
    assert h.prediction_rows(result)[0] == {"label": "cat", "score": "0.900", "box": "20, 10, 120, 60"}
    assert h.mlflow_run_url("http://m/", "r1", "7") == "http://m/#/experiments/7/runs/r1"


def test_compare_helpers() -> None:
    runs = [
        {
            "id": 1,
            "name": "a",
            "model": "m",
            "dataset_version_id": 1,
            "hyperparameters": {"epochs": 3, "lr0": 0.01},
        },
        {
            "id": 2,
            "name": "b",
            "model": "m",
            "dataset_version_id": 1,
            "hyperparameters": {"epochs": 5, "lr0": 0.01},
        },
    ]
    rows = experiments.hyperparameter_rows(runs)
    assert rows[0] == {"name": "epochs", "values": ["3", "5"], "differs": True}
    assert {r["name"]: r["differs"] for r in rows}["lr0"] is False
    curves = {
        1: [{"epoch": 0.0, "map50": 0.1}, {"epoch": 1.0, "map50": 0.3}],
        2: [{"epoch": 0.0, "map50": 0.2}],
    }
    assert experiments.final_metrics(curves) == {1: {"map50": 0.3}, 2: {"map50": 0.2}}
    assert experiments.metric_names(curves) == ["map50"]
    table = [{"id": 1, "v": 0.3}, {"id": 2, "v": None}, {"id": 3, "v": 0.5}]
    assert [r["id"] for r in experiments.sort_rows(table, "v", descending=True)] == [3, 1, 2]
    figure = compare_figure({"1": curves[1], "2": curves[2]}, {"1": "a", "2": "b"}, "map50")
    assert [len(t.x) for t in figure.data] == [2, 1]
    runs[0]["final"], runs[1]["final"] = {"map50": 0.3}, {"map50": 0.2}
    parallel = parallel_figure(runs, ["epochs"], "map50")
    assert list(parallel.layout.xaxis.ticktext) == ["epochs", "map50"]
    assert len(parallel.data) == 2 and all(t.type == "scatter" for t in parallel.data), (
        "SVG, one line per run"
    )


def test_parallel_coordinates_say_what_they_leave_out() -> None:
    many = [
        {"id": i, "name": f"r{i}", "hyperparameters": {"lr": i / 100}, "final": {"map50": i / 60}}
        for i in range(60)
    ]
    figure = parallel_figure(many, ["lr"], "map50")
    assert len(figure.data) == 50
    assert "best 50 of 60" in figure.layout.title.text
    drawn = {t.name for t in figure.data}
    assert "r59" in drawn and "r0" not in drawn, "the best runs by the metric are the ones drawn"


def test_lttb_bounds_points_and_keeps_the_extremes() -> None:
    xs = [float(i) for i in range(1000)]
    ys = [0.0] * 1000
    ys[137], ys[801] = 5.0, -4.0  # a spike and a dip every-n-th sampling would likely miss
    keep = experiments.lttb(xs, ys, 100)
    assert len(keep) == 100 and keep[0] == 0 and keep[-1] == 999 and keep == sorted(keep)
    assert 137 in keep and 801 in keep
    assert experiments.lttb(xs[:10], ys[:10], 100) == list(range(10))
    series_x, series_y = experiments.chart_series(
        [{"epoch": x, "m": y} for x, y in zip(xs, ys, strict=True)], "m", 300
    )
    assert len(series_x) == 300 and max(series_y) == 5.0 and min(series_y) == -4.0


def test_validation_figures() -> None:
    doc = {"names": ["a", "background"], "counts": [[3, 1], [0, 0]]}
    assert [list(row) for row in confusion_matrix_figure(doc).data[0].z] == [[3, 1], [0, 0]]
    assert len(pr_curve_figure({"recall": [0, 1], "precision": {"a": [1, 0.5]}}).data) == 1
    assert len(confusion_matrix_figure(None).data) == 0


def test_usage_per_group() -> None:
    now = datetime(2026, 1, 10, 12, tzinfo=UTC)
    t = now - timedelta(hours=2)
    facts = [
        {
            "project": "P",
            "user": "u",
            "state": "succeeded",
            "device": "cpu",
            "created_at": t,
            "started_at": t + timedelta(seconds=30),
            "finished_at": t + timedelta(hours=1, seconds=30),
        },
        {
            "project": "P",
            "user": "u",
            "state": "failed",
            "device": "cuda:0",
            "created_at": t,
            "started_at": t + timedelta(seconds=10),
            "finished_at": t + timedelta(minutes=30, seconds=10),
        },
        {
            "project": "P",
            "user": "v",
            "state": "queued",
            "device": "auto",
            "created_at": t,
            "started_at": None,
            "finished_at": None,
        },
    ]
    usage = experiments.usage(facts, group_key="project", today=date(2026, 1, 10), days=3, now=now)
    assert usage.jobs_per_day["P"] == [0, 0, 3]
    s = usage.summary["P"]
    assert (
        s["success_rate"] == 0.5
        and s["cpu_hours"] == pytest.approx(1.0)
        and s["gpu_hours"] == pytest.approx(0.5)
    )
    assert s["queue_wait_p90_s"] == 30


def test_a_run_without_a_dataset_version_reads_uploaded_images() -> None:
    """A batch run of uploaded weights over a zip has no dataset version: never "None"."""
    from components.experiment_card import experiment_card_data

    base = {"id": 3, "name": "zip", "model": "yolo11n.yaml", "state": "succeeded", "hyperparameters": {}}
    rows = experiments.hyperparameter_rows(
        [{**base, "dataset_version_id": None}, {**base, "id": 4, "dataset_version_id": 2}]
    )
    data = next(r for r in rows if r["name"] == "dataset_version_id")
    assert data == {"name": "dataset_version_id", "values": ["uploaded images", "2"], "differs": True}
    assert experiment_card_data({**base, "dataset_version_id": None}).dataset == "uploaded images"
    assert experiment_card_data({**base, "dataset_version_id": 2}).dataset == "version 2"
    assert experiment_card_data(base).dataset == "version ?"
