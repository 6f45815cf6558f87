"""Dataset statistics charts (class counts per split, image sizes, boxes per image).

Pure functions of the stats JSON (services.domain.datasets.stats); every figure uses THE chart layout.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import plotly.graph_objects as go

from components.chart_style import chart_layout

SPLIT_COLOURS = {"train": "#1d4ed8", "val": "#b45309", "test": "#047857"}
SPLIT_PATTERNS = {"train": "", "val": "/", "test": "."}


def class_counts_figure(stats: Mapping[str, Any]) -> go.Figure:
    """Instances of each class, one bar group per class and a bar per split."""
    figure = go.Figure(layout=chart_layout(x_title="Class", y_title="Instances", height=320))
    for split, counts in (stats.get("instances_per_class") or {}).items():
        figure.add_trace(
            go.Bar(
                x=list(counts.keys()),
                y=list(counts.values()),
                name=split,
                marker={
                    "color": SPLIT_COLOURS.get(split, "#475569"),
                    "pattern": {"shape": SPLIT_PATTERNS.get(split, "")},
                },
                hovertemplate=f"{split}: %{{y}}<extra></extra>",
            )
        )
    figure.update_layout(barmode="group")
    return figure


def image_sizes_figure(stats: Mapping[str, Any]) -> go.Figure:
    """Width x height of the images; marker size grows with how many share a size."""
    sizes = stats.get("image_sizes") or []
    figure = go.Figure(layout=chart_layout(x_title="Width (px)", y_title="Height (px)", height=320))
    figure.add_trace(
        go.Scatter(
            x=[s["width"] for s in sizes],
            y=[s["height"] for s in sizes],
            mode="markers",
            name="images",
            marker={
                "color": SPLIT_COLOURS["train"],
                "size": [min(40, 8 + 2 * s["count"]) for s in sizes],
                "opacity": 0.7,
            },
            customdata=[s["count"] for s in sizes],
            # "images: N" reads right for any N (no "1 images").
            hovertemplate="%{x}×%{y}px, images: %{customdata}<extra></extra>",
        )
    )
    figure.update_layout(hovermode="closest")
    return figure


def boxes_per_image_figure(stats: Mapping[str, Any]) -> go.Figure:
    """How many images have 0, 1, 2, ... objects, per split."""
    figure = go.Figure(layout=chart_layout(x_title="Objects per image", y_title="Images", height=320))
    for split, histogram in (stats.get("objects_per_image") or {}).items():
        figure.add_trace(
            go.Bar(
                x=[int(k) for k in histogram],
                y=list(histogram.values()),
                name=split,
                marker={
                    "color": SPLIT_COLOURS.get(split, "#475569"),
                    "pattern": {"shape": SPLIT_PATTERNS.get(split, "")},
                },
                hovertemplate=f"{split}, images: %{{y}}<extra></extra>",
            )
        )
    figure.update_layout(barmode="group")
    figure.update_xaxes(dtick=1)
    return figure
