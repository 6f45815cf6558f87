"""Pure UI helpers: the metrics figure, the shared chart layout, tokens and row formatting."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from components import tokens
from components.chart_style import chart_layout
from components.charts import TASK_CHARTS, chart_for, flatten_points, metrics_figure
from services.domain.schemas import MetricPoint
from state.formatting import epoch_progress, job_row


def _point(epoch: int, **metrics: float) -> dict:
    return {"epoch": epoch, "metrics": metrics}


def test_figure_has_one_point_per_epoch_for_each_series():
    points = [
        _point(e, train_box_loss=2 - e / 10, val_box_loss=2.1, map50=e / 10, map50_95=e / 20)
        for e in range(3)
    ]
    rows = flatten_points(points)
    figure = metrics_figure(rows)
    names = [trace.name for trace in figure.data]
    assert names == [series.label for series in chart_for("detect").series]
    for trace in figure.data:
        assert list(trace.x) == [1, 2, 3], "epochs are shown 1-based"
    assert list(figure.data[0].y) == pytest.approx([2.0, 1.9, 1.8])


def test_figure_gains_a_point_when_an_epoch_is_added():
    points = [_point(0, train_box_loss=1.5, map50=0.1)]
    before = metrics_figure(flatten_points(points))
    points.append(_point(1, train_box_loss=1.2, map50=0.2))
    after = metrics_figure(flatten_points(points))
    assert len(after.data[0].x) == len(before.data[0].x) + 1


def test_flatten_points_sorts_dedupes_and_drops_non_numbers():
    rows = flatten_points(
        [
            _point(2, map50=0.3),
            MetricPoint(epoch=0, metrics={"map50": 0.1}),
            _point(1, map50=0.2, note="x"),  # type: ignore[arg-type]
            _point(2, map50=0.35),
        ]
    )
    assert [r["epoch"] for r in rows] == [0, 1, 2]
    assert rows[2]["map50"] == 0.35
    assert "note" not in rows[1]


def test_missing_metrics_leave_gaps_instead_of_zeros():
    figure = metrics_figure(flatten_points([_point(0, train_box_loss=1.0), _point(1, map50=0.4)]))
    by_name = {trace.name: trace for trace in figure.data}
    assert list(by_name["Train box loss"].x) == [1]
    assert list(by_name["mAP50"].x) == [2]


def test_empty_figure_is_valid():
    figure = metrics_figure([])
    assert all(len(trace.x) == 0 for trace in figure.data)
    assert figure.to_json()


def test_every_chart_uses_the_shared_layout():
    figure = metrics_figure([])
    layout = chart_layout(x_title="Epoch", y_title="Box loss", y2_title="mAP")
    assert figure.layout.paper_bgcolor == layout["paper_bgcolor"] == tokens.SURFACE
    assert figure.layout.xaxis.gridcolor == tokens.GRID
    assert figure.layout.hovermode == "x unified"
    assert figure.layout.yaxis2.overlaying == "y"
    assert "yaxis2" not in chart_layout(y_title="loss")


def test_series_colours_come_from_tokens():
    for task, chart in TASK_CHARTS.items():
        figure = metrics_figure([], task)
        assert [trace.line.color for trace in figure.data] == [tokens.SERIES[s.key] for s in chart.series]
        assert len({(s.axis, tokens.SERIES[s.key], s.dash) for s in chart.series}) == len(chart.series), (
            f"{task}: two series drawn alike"
        )


@pytest.mark.parametrize("state", sorted(tokens.STATUS))
def test_status_colours_meet_wcag_aa(state):
    spec = tokens.STATUS[state]
    assert tokens.contrast_ratio(spec["fg"], spec["bg"]) >= 4.5
    assert spec["icon"] and spec["label"], "never colour alone"


def test_text_tokens_meet_wcag_aa():
    assert tokens.contrast_ratio(tokens.TEXT, tokens.SURFACE) >= 4.5
    assert tokens.contrast_ratio(tokens.TEXT_MUTED, tokens.BACKGROUND) >= 4.5
    assert tokens.contrast_ratio(tokens.PRIMARY_TEXT, tokens.PRIMARY) >= 4.5
    assert tokens.contrast_ratio(tokens.PRIMARY_TEXT, tokens.DANGER) >= 4.5
    assert tokens.contrast_ratio(tokens.PRIMARY, tokens.SURFACE) >= 4.5


@pytest.mark.parametrize(
    ("current", "total", "expected"),
    [(None, 5, "0/5"), (0, 5, "1/5"), (4, 5, "5/5"), (9, 5, "5/5"), (2, None, "3/?")],
)
def test_epoch_progress_is_one_based(current, total, expected):
    assert epoch_progress(current, total) == expected


def test_job_row_links_to_the_job_page():
    from services.domain.schemas import JobPublic

    job = JobPublic(
        id=7, project_id=1, dataset_version_id=1, name="run", framework="ultralytics", task="detect",
        model="yolo11n.yaml", hyperparameters={}, device="auto", state="running", attempt=1,
        mlflow_run_id=None, current_epoch=1, total_epochs=3, trainer_device=None, error_kind=None,
        error_message=None, artifacts={}, log_tail=[], created_at=datetime(2026, 1, 2, 3, 4, tzinfo=UTC),
        started_at=None, finished_at=None, last_heartbeat_at=None,
    )  # fmt: skip
    assert job_row(job) == {
        "id": "7", "name": "run", "state": "running", "epoch": "2/3",
        "created": "2026-01-02 03:04 UTC", "href": "/jobs/7",
    }  # fmt: skip


@pytest.mark.parametrize("colour", tokens.RUN_PALETTE)
def test_run_palette_colours_are_readable_on_white(colour):
    """The palette also colours text (class labels, legends), so each one needs AA on the surface."""
    assert tokens.contrast_ratio(colour, tokens.SURFACE) >= 4.5
