"""Plotly figures built from plain data (pure functions: unit-tested without a browser)."""

from __future__ import annotations

import json
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import plotly.graph_objects as go
import plotly.io

from components import tokens
from components.chart_style import chart_layout


@dataclass(frozen=True)
class Series:
    """One line of the live chart: a metric key of the trainer protocol and how it is drawn."""

    key: str
    label: str
    axis: str  # "y" (losses, left) or "y2" (quality 0..1, right)
    dash: str


@dataclass(frozen=True)
class TaskChart:
    """What the live chart of one task is called and which metrics it draws.

    The labels follow the task because the trainer reports different metrics per task
    (docs/trainer-protocol.md): a classification job has no boxes and no mAP, and a chart that
    says "Box loss" over its loss would tell the user something false.
    """

    title: str
    y_title: str
    y2_title: str
    series: tuple[Series, ...]


_DETECT = TaskChart(
    title="Box loss and mAP per epoch",
    y_title="Box loss",
    y2_title="mAP",
    series=(
        Series("train_box_loss", "Train box loss", "y", "solid"),
        Series("val_box_loss", "Val box loss", "y", "dash"),
        Series("map50", "mAP50", "y2", "solid"),
        Series("map50_95", "mAP50-95", "y2", "dot"),
    ),
)
TASK_CHARTS: dict[str, TaskChart] = {
    "detect": _DETECT,
    "segment": TaskChart(
        title="Box and mask loss, mAP per epoch",
        y_title="Loss (box, mask)",
        y2_title="mAP",
        series=(
            Series("train_box_loss", "Train box loss", "y", "solid"),
            Series("val_box_loss", "Val box loss", "y", "dash"),
            Series("train_seg_loss", "Train mask loss", "y", "dot"),
            Series("val_seg_loss", "Val mask loss", "y", "dashdot"),
            Series("map50", "Box mAP50", "y2", "solid"),
            Series("map50_95", "Box mAP50-95", "y2", "dot"),
            Series("mask_map50", "Mask mAP50", "y2", "dash"),
            Series("mask_map50_95", "Mask mAP50-95", "y2", "longdash"),
        ),
    ),
    "classify": TaskChart(
        title="Loss and accuracy per epoch",
        y_title="Loss",
        y2_title="Accuracy",
        series=(
            Series("train_loss", "Train loss", "y", "solid"),
            Series("val_loss", "Val loss", "y", "dash"),
            Series("top1", "Top-1 accuracy", "y2", "solid"),
            Series("top5", "Top-5 accuracy", "y2", "dot"),
        ),
    ),
}
# Few enough points that each one should be visible as a marker; with more, markers crowd the
# line. A single epoch is a single point, which a line alone never draws.
MARKERS_UP_TO = 30


def chart_for(task: str) -> TaskChart:
    """The chart of `task`; an unknown task gets the detection chart (the default task)."""
    return TASK_CHARTS.get(task, _DETECT)


def flatten_points(points: Iterable[Any]) -> list[dict[str, float]]:
    """MetricPoint-like items ({"epoch": n, "metrics": {...}}) -> flat rows sorted by epoch.

    Non-numeric values are dropped; a later duplicate epoch replaces an earlier one.
    """
    by_epoch: dict[int, dict[str, float]] = {}
    for point in points:
        data = point if isinstance(point, Mapping) else point.model_dump()
        epoch = int(data["epoch"])
        row: dict[str, float] = {"epoch": float(epoch)}
        for key, value in (data.get("metrics") or {}).items():
            if isinstance(value, int | float) and not isinstance(value, bool):
                row[key] = float(value)
        by_epoch[epoch] = row
    return [by_epoch[e] for e in sorted(by_epoch)]


def metrics_figure(rows: Iterable[Mapping[str, float]], task: str = "detect") -> go.Figure:
    """Losses (left axis) and the task's quality metrics (right axis, 0..1) per epoch, 1-based.

    `rows` are flat rows as made by `flatten_points`. Every series has one point per epoch
    that reported the metric, so the chart grows by a point each epoch; points carry markers
    while there are few of them, so a one-epoch job shows its one point.
    """
    rows = list(rows)
    chart = chart_for(task)
    figure = go.Figure(layout=chart_layout(x_title="Epoch", y_title=chart.y_title, y2_title=chart.y2_title))
    for series in chart.series:
        xs = [int(r["epoch"]) + 1 for r in rows if series.key in r]
        ys = [r[series.key] for r in rows if series.key in r]
        few = len(xs) <= MARKERS_UP_TO
        figure.add_trace(
            go.Scatter(
                x=xs,
                y=ys,
                name=series.label,
                mode="lines+markers" if few else "lines",
                yaxis=series.axis,
                line={"color": tokens.SERIES[series.key], "dash": series.dash, "width": 2},
                marker={"size": 9 if len(xs) <= 3 else 6},
                hovertemplate=f"{series.label}: %{{y:.4f}}<extra></extra>",
            )
        )
    figure.update_xaxes(tick0=1, dtick=1 if len(rows) <= 20 else None)
    if len(rows) == 1:
        # One epoch: centre the point, with only its own tick (no epoch 0 or 2 that never ran).
        epoch = int(rows[0]["epoch"]) + 1
        figure.update_xaxes(range=[epoch - 0.5, epoch + 0.5])
    return figure


def metrics_figure_json(rows: Iterable[Mapping[str, float]], task: str = "detect") -> dict[str, Any]:
    """`metrics_figure` as the Plotly JSON the browser draws, made once per distinct rows and task.

    Every page watching a job shows the same points; building and serializing a go.Figure per
    page per epoch cost the web process more than everything else those pages did. The result
    is shared between callers: treat it as read-only.
    """
    key = tuple(tuple(sorted(row.items())) for row in rows)
    return _figure_json(key, task)


@lru_cache(maxsize=64)
def _figure_json(key: tuple[tuple[tuple[Hashable, float], ...], ...], task: str) -> dict[str, Any]:
    figure = metrics_figure([dict(row) for row in key], task)
    found: dict[str, Any] = json.loads(str(plotly.io.to_json(figure)))
    return found
