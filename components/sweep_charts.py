"""Figures of the sweep page (pure functions of the sweep's trials): the optimisation history
with the best value so far, parallel coordinates of the trials coloured by the objective, and
parameter importances. Every figure starts from components.chart_style.chart_layout.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import plotly.graph_objects as go

from components import tokens
from components.chart_style import chart_layout
from components.training_charts import empty_figure

# Sequential scale for "how good": light for poor, the primary blue for good (colour-blind safe).
OBJECTIVE_SCALE = [[0.0, "#dbeafe"], [0.5, "#60a5fa"], [1.0, tokens.PRIMARY]]


def _better(a: float, b: float, direction: str) -> bool:
    return a > b if direction == "maximize" else a < b


def history_figure(trials: Sequence[Mapping[str, Any]], objective: str, direction: str) -> go.Figure:
    """Each finished trial's value by trial number, the best so far as a step line, and pruned
    trials at the value they were stopped with."""
    complete = [t for t in trials if t.get("state") == "COMPLETE" and t.get("value") is not None]
    pruned = [t for t in trials if t.get("state") == "PRUNED" and t.get("intermediate")]
    if not complete and not pruned:
        return empty_figure("No finished trial yet", height=320)
    figure = go.Figure(layout=chart_layout(x_title="trial", y_title=objective, height=320))
    figure.update_layout(hovermode="closest")
    figure.add_trace(
        go.Scatter(
            x=[t["number"] for t in complete],
            y=[t["value"] for t in complete],
            mode="markers",
            name="trial",
            marker={"color": tokens.RUN_PALETTE[0], "size": 9},
        )
    )
    if pruned:
        last = [t["intermediate"][max(t["intermediate"], key=int)] for t in pruned]
        figure.add_trace(
            go.Scatter(
                x=[t["number"] for t in pruned],
                y=last,
                mode="markers",
                name="pruned (value when stopped)",
                marker={"color": tokens.RUN_PALETTE[1], "size": 9, "symbol": "x"},
            )
        )
    best_x, best_y, best = [], [], None
    for trial in sorted(complete, key=lambda t: t["number"]):
        if best is None or _better(trial["value"], best, direction):
            best = trial["value"]
        best_x.append(trial["number"])
        best_y.append(best)
    if best_x:
        figure.add_trace(
            go.Scatter(
                x=best_x,
                y=best_y,
                mode="lines",
                line={"shape": "hv", "color": tokens.RUN_PALETTE[2], "dash": "dash", "width": 2},
                name="best so far",
            )
        )
    return figure


def _dimension(name: str, values: list[Any]) -> dict[str, Any]:
    if all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        return {"label": name, "values": values}
    labels = sorted({str(v) for v in values})
    index = {label: i for i, label in enumerate(labels)}
    return {
        "label": name,
        "values": [index[str(v)] for v in values],
        "tickvals": list(range(len(labels))),
        "ticktext": labels,
    }


def parallel_figure(trials: Sequence[Mapping[str, Any]], params: Sequence[str], objective: str) -> go.Figure:
    """One line per finished trial across its searched parameters and its value."""
    complete = [t for t in trials if t.get("state") == "COMPLETE" and t.get("value") is not None]
    complete = [t for t in complete if all(p in t.get("params", {}) for p in params)]
    if not complete or not params:
        return empty_figure("Parallel coordinates appear once a trial has finished", height=340)
    values = [float(t["value"]) for t in complete]
    dimensions = [_dimension(p, [t["params"][p] for t in complete]) for p in params]
    dimensions.append({"label": objective, "values": values})
    layout = chart_layout(height=340)
    layout["margin"] = {"l": 64, "r": 64, "t": 56, "b": 32}
    figure = go.Figure(layout=layout)
    figure.add_trace(
        go.Parcoords(
            line={
                "color": values,
                "colorscale": OBJECTIVE_SCALE,
                "showscale": True,
                "colorbar": {"title": {"text": objective}},
            },
            dimensions=dimensions,
            labelfont={"color": tokens.TEXT, "size": 12},
            tickfont={"color": tokens.TEXT_MUTED, "size": 11},
        )
    )
    return figure


def importance_figure(importances: Mapping[str, float], note: str) -> go.Figure:
    if not importances:
        return empty_figure(note or "No importances yet", height=260)
    ordered = sorted(importances.items(), key=lambda kv: kv[1])
    figure = go.Figure(layout=chart_layout(x_title="importance (Optuna PED-ANOVA, normalised)", height=260))
    figure.update_layout(hovermode="closest", showlegend=False)
    figure.add_trace(
        go.Bar(
            x=[v for _, v in ordered],
            y=[k for k, _ in ordered],
            orientation="h",
            marker={"color": tokens.PRIMARY},
            text=[f"{v:.2f}" for _, v in ordered],
            textposition="auto",
        )
    )
    return figure
