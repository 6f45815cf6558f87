"""The one Plotly layout used by every chart: token colours, grid, legend and hover."""

from __future__ import annotations

from typing import Any

from components import tokens


def chart_layout(
    *,
    title: str = "",
    x_title: str = "",
    y_title: str = "",
    y2_title: str | None = None,
    height: int = 380,
) -> dict[str, Any]:
    """A Plotly layout dict. `y2_title` adds a right-hand axis (e.g. mAP next to losses)."""
    axis = {
        "showgrid": True,
        "gridcolor": tokens.GRID,
        "zeroline": False,
        "linecolor": tokens.BORDER,
        "tickfont": {"color": tokens.TEXT_MUTED, "size": 12},
        "title": {"font": {"color": tokens.TEXT, "size": 13}},
    }
    layout: dict[str, Any] = {
        "title": {"text": title, "x": 0, "xanchor": "left", "font": {"size": 16, "color": tokens.TEXT}},
        "font": {"family": tokens.FONT_FAMILY, "color": tokens.TEXT, "size": 13},
        "paper_bgcolor": tokens.SURFACE,
        "plot_bgcolor": tokens.SURFACE,
        "height": height,
        "margin": {"l": 56, "r": 56 if y2_title else 24, "t": 56 if title else 24, "b": 48},
        "hovermode": "x unified",
        "hoverlabel": {
            "bgcolor": tokens.SURFACE,
            "bordercolor": tokens.BORDER,
            "font": {"color": tokens.TEXT},
        },
        "legend": {
            "orientation": "h",
            "x": 0,
            "y": -0.18,
            "xanchor": "left",
            "yanchor": "top",
            "font": {"color": tokens.TEXT, "size": 12},
        },
        "xaxis": {**axis, "title": {**axis["title"], "text": x_title}},
        "yaxis": {**axis, "title": {**axis["title"], "text": y_title}},
    }
    if y2_title is not None:
        layout["yaxis2"] = {
            **axis,
            "showgrid": False,
            "overlaying": "y",
            "side": "right",
            "range": [0, 1],
            "title": {**axis["title"], "text": y2_title},
        }
        layout["margin"]["b"] = 72
    return layout
