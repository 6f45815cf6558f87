"""Plotly figures built from plain data (pure functions: unit-tested without a browser)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import plotly.graph_objects as go

from components import tokens
from components.chart_style import chart_layout

# Metric key (trainer protocol, docs/trainer-protocol.md) -> legend label, axis, dash.
METRIC_SERIES: tuple[tuple[str, str, str, str], ...] = (
    ("train_box_loss", "Train box loss", "y", "solid"),
    ("val_box_loss", "Val box loss", "y", "dash"),
    ("map50", "mAP50", "y2", "solid"),
    ("map50_95", "mAP50-95", "y2", "dot"),
)


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


def metrics_figure(rows: Iterable[Mapping[str, float]]) -> go.Figure:
    """Losses (left axis) and mAP (right axis, 0..1) per epoch; epochs shown 1-based.

    `rows` are flat rows as made by `flatten_points`. Every series has one point per epoch
    that reported the metric, so the chart grows by a point each epoch.
    """
    rows = list(rows)
    figure = go.Figure(layout=chart_layout(x_title="Epoch", y_title="Box loss", y2_title="mAP"))
    for key, label, axis, dash in METRIC_SERIES:
        xs = [int(r["epoch"]) + 1 for r in rows if key in r]
        ys = [r[key] for r in rows if key in r]
        figure.add_trace(
            go.Scatter(
                x=xs,
                y=ys,
                name=label,
                mode="lines+markers",
                yaxis=axis,
                line={"color": tokens.SERIES[key], "dash": dash, "width": 2},
                marker={"size": 6},
                hovertemplate=f"{label}: %{{y:.4f}}<extra></extra>",
            )
        )
    figure.update_xaxes(tick0=1, dtick=1 if len(rows) <= 20 else None)
    return figure
