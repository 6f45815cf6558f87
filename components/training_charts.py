"""Figures of the training pages: validation, run comparison and analytics (pure functions).

Every figure starts from components.chart_style.chart_layout, the one Plotly style.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import plotly.graph_objects as go

from components import tokens
from components.chart_style import chart_layout

DASHES = ("solid", "dash", "dot", "dashdot", "longdash", "longdashdot")


def empty_figure(message: str, height: int = 240) -> go.Figure:
    figure = go.Figure(layout=chart_layout(height=height))
    figure.add_annotation(text=message, showarrow=False, font={"color": tokens.TEXT_MUTED, "size": 14})
    figure.update_xaxes(visible=False)
    figure.update_yaxes(visible=False)
    return figure


def confusion_matrix_figure(doc: Mapping[str, Any] | None) -> go.Figure:
    """counts[p][t] as a heatmap: true class across, predicted class down, counts in the cells."""
    if not doc or not doc.get("counts"):
        return empty_figure("No confusion matrix yet")
    names = [str(n) for n in doc.get("names") or []]
    counts = doc["counts"]
    size = max(320, min(720, 60 * len(names) + 160))
    figure = go.Figure(layout=chart_layout(x_title="True class", y_title="Predicted class", height=size))
    figure.add_trace(
        go.Heatmap(
            z=counts,
            x=names,
            y=names,
            colorscale=[[0, tokens.SURFACE], [1, tokens.PRIMARY]],
            text=[[str(int(v)) for v in row] for row in counts],
            texttemplate="%{text}",
            hovertemplate="true %{x}<br>predicted %{y}<br>%{z}<extra></extra>",
            colorbar={"title": {"text": "count"}},
        )
    )
    figure.update_yaxes(autorange="reversed", showgrid=False)
    figure.update_xaxes(showgrid=False, side="bottom")
    figure.update_layout(hovermode="closest")
    return figure


def pr_curve_figure(doc: Mapping[str, Any] | None) -> go.Figure:
    if not doc or not doc.get("precision"):
        return empty_figure("No precision-recall curve (classification jobs have none)")
    recall = doc.get("recall") or []
    figure = go.Figure(
        layout=chart_layout(x_title="Recall", y_title=f"Precision (IoU {doc.get('iou', 0.5)})", height=360)
    )
    for i, (name, precision) in enumerate(sorted(doc["precision"].items())):
        figure.add_trace(
            go.Scatter(
                x=recall,
                y=precision,
                name=str(name),
                mode="lines",
                line={
                    "color": tokens.RUN_PALETTE[i % len(tokens.RUN_PALETTE)],
                    "dash": DASHES[i % len(DASHES)],
                    "width": 2,
                },
                hovertemplate=f"{name}: P %{{y:.3f}} at R %{{x:.2f}}<extra></extra>",
            )
        )
    figure.update_xaxes(range=[0, 1])
    figure.update_yaxes(range=[0, 1.02])
    figure.update_layout(hovermode="closest")
    return figure


def compare_figure(
    curves: Mapping[str, Sequence[Mapping[str, float]]], labels: Mapping[str, str], metric: str
) -> go.Figure:
    """One line per run for `metric` per epoch (1-based). `curves`/`labels` are keyed by run id."""
    figure = go.Figure(layout=chart_layout(x_title="Epoch", y_title=metric, height=400))
    # WebGL lines only when there are many runs (SVG stays crisp and works without a GPU).
    trace = go.Scattergl if len(curves) > 50 else go.Scatter
    for i, (run_id, rows) in enumerate(curves.items()):
        xs = [int(r["epoch"]) + 1 for r in rows if metric in r]
        ys = [r[metric] for r in rows if metric in r]
        figure.add_trace(
            trace(
                x=xs,
                y=ys,
                name=labels.get(run_id, run_id),
                mode="lines+markers" if len(curves) <= 12 else "lines",
                line={
                    "color": tokens.RUN_PALETTE[i % len(tokens.RUN_PALETTE)],
                    "dash": DASHES[i // len(tokens.RUN_PALETTE) % len(DASHES)],
                },
                hovertemplate=f"{labels.get(run_id, run_id)}: %{{y:.4f}}<extra></extra>",
            )
        )
    figure.update_layout(hovermode="closest", showlegend=len(curves) <= 20)
    epochs = {int(r["epoch"]) + 1 for rows in curves.values() for r in rows if metric in r}
    if len(epochs) == 1:
        # Runs of one epoch: centre it with its own tick only, like the job page's chart.
        (epoch,) = epochs
        figure.update_xaxes(range=[epoch - 0.5, epoch + 0.5], tick0=1, dtick=1)
    return figure


PARALLEL_MAX_RUNS = 50


def parallel_figure(runs: Sequence[Mapping[str, Any]], params: Sequence[str], metric: str) -> go.Figure:
    """Parallel coordinates: numeric hyperparameters that vary, then the final `metric`.

    Drawn as plain SVG lines over axes scaled to 0..1 (no WebGL: it stays responsive in a browser
    without a GPU). Past PARALLEL_MAX_RUNS runs it draws the best ones by `metric` and says so.
    """
    if not runs:
        return empty_figure("Pick runs to compare")
    axes: list[tuple[str, list[float]]] = []
    for name in params:
        values = [r["hyperparameters"].get(name) for r in runs]
        if all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
            axes.append((name, [float(v) for v in values]))
    final = [float(r.get("final", {}).get(metric, float("nan"))) for r in runs]
    axes.append((metric, final))
    order = sorted(
        range(len(runs)), key=lambda i: (final[i] != final[i], -final[i] if final[i] == final[i] else 0)
    )
    shown = order[:PARALLEL_MAX_RUNS]
    title = (
        f"{len(runs)} runs"
        if len(runs) <= PARALLEL_MAX_RUNS
        else (f"The best {PARALLEL_MAX_RUNS} of {len(runs)} runs by {metric}")
    )
    figure = go.Figure(layout=chart_layout(height=360, title=title))
    scaled: list[list[float | None]] = []
    for _name, values in axes:
        finite = [v for v in values if v == v]
        low, high = (min(finite), max(finite)) if finite else (0.0, 1.0)
        span = (high - low) or 1.0
        scaled.append([None if v != v else (v - low) / span for v in values])
    known = [v for v in final if v == v]
    low_metric, high_metric = (min(known), max(known)) if known else (0.0, 1.0)
    for rank, i in enumerate(shown):
        value = final[i]
        share = (
            0.0
            if value != value or high_metric == low_metric
            else (value - low_metric) / (high_metric - low_metric)
        )
        figure.add_trace(
            go.Scatter(
                x=list(range(len(axes))),
                y=[column[i] for column in scaled],
                mode="lines",
                line={"color": tokens.PRIMARY if share >= 0.5 else "#b45309", "width": 2 if rank < 5 else 1},
                opacity=0.35 + 0.65 * share,
                name=str(runs[i].get("name", runs[i].get("id"))),
                hovertemplate=f"#{runs[i].get('id')} {runs[i].get('name', '')}: {metric} {value:.4f}"
                + "<extra></extra>",
                showlegend=False,
            )
        )
    for index, (name, values) in enumerate(axes):
        finite = [v for v in values if v == v]
        low, high = (min(finite), max(finite)) if finite else (0.0, 0.0)
        figure.add_annotation(x=index, y=1.08, text=f"<b>{name}</b>", showarrow=False, yref="y")
        figure.add_annotation(x=index, y=-0.08, text=f"{low:.3g} – {high:.3g}", showarrow=False, yref="y")
    figure.update_xaxes(
        tickvals=list(range(len(axes))),
        ticktext=[name for name, _ in axes],
        showgrid=True,
        range=[-0.3, len(axes) - 0.7],
    )
    figure.update_yaxes(visible=False, range=[-0.15, 1.15])
    figure.update_layout(hovermode="closest", margin={"l": 40, "r": 40, "t": 56, "b": 40})
    return figure


def grouped_bars(
    x: Sequence[str],
    series: Mapping[str, Sequence[float]],
    *,
    y_title: str,
    stacked: bool = False,
    height: int = 320,
) -> go.Figure:
    figure = go.Figure(layout=chart_layout(y_title=y_title, height=height))
    for i, (name, values) in enumerate(series.items()):
        figure.add_trace(
            go.Bar(
                x=list(x),
                y=list(values),
                name=name,
                marker={"color": tokens.RUN_PALETTE[i % len(tokens.RUN_PALETTE)]},
                hovertemplate=f"{name}: %{{y}}<extra></extra>",
            )
        )
    figure.update_layout(barmode="stack" if stacked else "group")
    return figure


def score_histogram_figure(doc: Mapping[str, Any] | None) -> go.Figure:
    """A batch run's scores (boxes, or top-1 for classification) in bins of 0.1."""
    if not doc or not sum(doc.get("counts") or []):
        return empty_figure("No predictions to show")
    edges, counts = doc["edges"], doc["counts"]
    labels = [f"{lo:.1f}-{hi:.1f}" for lo, hi in zip(edges[:-1], edges[1:], strict=True)]
    figure = go.Figure(layout=chart_layout(x_title="Score", y_title="Predictions", height=300))
    figure.add_trace(
        go.Bar(
            x=labels,
            y=counts,
            marker={"color": tokens.RUN_PALETTE[0]},
            hovertemplate="%{x}: %{y}<extra></extra>",
        )
    )
    figure.update_layout(hovermode="closest")
    return figure
