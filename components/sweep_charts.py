"""Figures of the sweep page (pure functions of the sweep's trials): the optimisation history
with the best value so far, parallel coordinates of the trials coloured by the objective, and
parameter importances. Every figure starts from components.chart_style.chart_layout.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
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


COLOUR_BANDS = 8  # lines are drawn in this many shades of the objective (one SVG trace each)


def _shade(share: float) -> str:
    """The colour of OBJECTIVE_SCALE at `share` (0..1), as a hex string."""
    stops = [(float(at), colour.lstrip("#")) for at, colour in OBJECTIVE_SCALE]
    for (a, low), (b, high) in zip(stops, stops[1:], strict=False):
        if share <= b:
            f = 0.0 if b == a else (share - a) / (b - a)
            rgb = [round(int(low[i : i + 2], 16) * (1 - f) + int(high[i : i + 2], 16) * f) for i in (0, 2, 4)]
            return "#" + "".join(f"{c:02x}" for c in rgb)
    return "#" + stops[-1][1]


def _axis(name: str, values: list[Any], log: bool) -> tuple[list[float], list[tuple[float, str]]]:
    """One axis scaled to 0..1: each trial's position and the tick labels (position, text).
    Numbers are linear (or log10 when the search space says log); anything else is a category."""
    if all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        use_log = log and all(float(v) > 0 for v in values)
        raw = [math.log10(float(v)) if use_log else float(v) for v in values]
        low, high = min(raw), max(raw)
        span = (high - low) or 1.0
        ticks = (
            [(0.0, f"{min(values):.3g}"), (1.0, f"{max(values):.3g}")]
            if high > low
            else [(0.0, f"{low:.3g}")]
        )
        return [(v - low) / span if high > low else 0.5 for v in raw], ticks
    labels = sorted({str(v) for v in values})
    step = 1 / (len(labels) - 1) if len(labels) > 1 else 0.0
    where = {label: (i * step if len(labels) > 1 else 0.5) for i, label in enumerate(labels)}
    return [where[str(v)] for v in values], [(where[label], label) for label in labels]


def parallel_figure(
    trials: Sequence[Mapping[str, Any]],
    params: Sequence[str],
    objective: str,
    log_params: Collection[str] = (),
) -> go.Figure:
    """One line per finished trial across its searched parameters and its value, coloured by
    the value. Plain SVG lines over axes scaled to 0..1, in COLOUR_BANDS traces: Plotly's own
    parallel-coordinates trace draws with WebGL, which takes seconds without a GPU."""
    complete = [t for t in trials if t.get("state") == "COMPLETE" and t.get("value") is not None]
    complete = [t for t in complete if all(p in t.get("params", {}) for p in params)]
    if not complete or not params:
        return empty_figure("Parallel coordinates appear once a trial has finished", height=340)
    values = [float(t["value"]) for t in complete]
    names = [*params, objective]
    axes = [_axis(p, [t["params"][p] for t in complete], p in log_params) for p in params]
    axes.append(_axis(objective, values, False))
    low, high = min(values), max(values)
    shares = [(v - low) / (high - low) if high > low else 1.0 for v in values]
    layout = chart_layout(height=340)
    layout["margin"] = {"l": 48, "r": 48, "t": 56, "b": 32}
    figure = go.Figure(layout=layout)
    bands: list[list[int]] = [[] for _ in range(COLOUR_BANDS)]
    for i, share in enumerate(shares):
        bands[min(COLOUR_BANDS - 1, int(share * COLOUR_BANDS))].append(i)
    last = len(names) - 1
    for band, members in enumerate(bands):  # the highest values last, drawn on top
        if not members:
            continue
        xs: list[float | None] = []
        ys: list[float | None] = []
        for i in members:
            xs += [*range(len(names)), None]
            ys += [*(axis[0][i] for axis in axes), None]
        figure.add_trace(
            go.Scatter(
                x=xs,
                y=ys,
                mode="lines",
                line={"color": _shade((band + 0.5) / COLOUR_BANDS), "width": 1.5},
                hoverinfo="skip",
                showlegend=False,
            )
        )
    figure.add_trace(
        go.Scatter(
            x=[last] * len(complete),
            y=axes[-1][0],
            mode="markers",
            marker={
                "color": values,
                "colorscale": OBJECTIVE_SCALE,
                "size": 6,
                "showscale": True,
                "colorbar": {"title": {"text": objective}, "thickness": 12},
            },
            text=[
                f"trial {t['number']}: "
                + ", ".join(
                    f"{p}={t['params'][p]:.4g}"
                    if isinstance(t["params"][p], float)
                    else f"{p}={t['params'][p]}"
                    for p in params
                )
                + f" → {objective} {v:.4g}"
                for t, v in zip(complete, values, strict=True)
            ],
            hoverinfo="text",
            showlegend=False,
        )
    )
    for index, (_positions, ticks) in enumerate(axes):
        figure.add_shape(
            type="line", x0=index, x1=index, y0=0, y1=1, line={"color": tokens.TEXT_MUTED, "width": 1}
        )
        for at, text in ticks:
            figure.add_annotation(
                x=index, y=at, text=text, showarrow=False, xanchor="left", xshift=4, font={"size": 11}
            )
    figure.update_xaxes(
        tickvals=list(range(len(names))), ticktext=names, side="top", showgrid=False, range=[-0.2, last + 0.5]
    )
    figure.update_yaxes(visible=False, range=[-0.05, 1.05])
    figure.update_layout(hovermode="closest")
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
