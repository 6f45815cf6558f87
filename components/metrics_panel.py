"""MetricsPanel: the job page's live chart and per-class table, labelled for the job's task.

Detection and segmentation report box (and mask) losses, mAP50 and mAP50-95, and per-class
AP50/AP50-95; classification reports one loss, top-1/top-5 accuracy, and per-class accuracy with
its support (how many validation images the class has). One table with merged headers such as
"AP50-95 / accuracy" made the user guess which half applied, so the columns are chosen here, from
the task, by pure functions the unit tests check without a browser.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import plotly.graph_objects as go
import reflex as rx

from components import tokens
from components.charts import chart_for

# per_class.json key -> column header, per headline metric (docs/trainer-protocol.md, v1.1).
# `support` is a count, the rest are 0..1 scores.
_BOX_COLUMNS: tuple[tuple[str, str], ...] = (
    ("ap50_95", "AP50-95"),
    ("ap50", "AP50"),
    ("precision", "Precision"),
    ("recall", "Recall"),
)
_MASK_COLUMNS: tuple[tuple[str, str], ...] = (("mask_ap50_95", "Mask AP50-95"), ("mask_ap50", "Mask AP50"))
_CLASSIFY_COLUMNS: tuple[tuple[str, str], ...] = (("accuracy", "Accuracy"), ("support", "Support"))
_COUNTS = frozenset({"support"})


def per_class_columns(task: str, doc: Mapping[str, Any] | None = None) -> tuple[tuple[str, str], ...]:
    """(key, header) of each metric column for `task`.

    The document's own `headline` wins over the task when they disagree (a job whose task is
    unknown to this UI still gets the right columns); segmentation adds the mask columns when the
    trainer reported them.
    """
    headline = str((doc or {}).get("headline") or "")
    if headline == "accuracy" or (not headline and task == "classify"):
        return _CLASSIFY_COLUMNS
    classes = (doc or {}).get("classes") or {}
    has_mask = any("mask_ap50_95" in v for v in classes.values() if isinstance(v, Mapping))
    return _BOX_COLUMNS + (_MASK_COLUMNS if task == "segment" or has_mask else ())


def per_class_headers(task: str, doc: Mapping[str, Any] | None = None) -> list[str]:
    """The table's column headers, the class column first."""
    return ["Class", *[header for _key, header in per_class_columns(task, doc)]]


def _cell(key: str, value: Any) -> str:
    if not isinstance(value, int | float) or isinstance(value, bool):
        return "—"
    return str(int(value)) if key in _COUNTS else f"{value:.3f}"


def per_class_table(task: str, doc: Mapping[str, Any] | None) -> list[list[str]]:
    """per_class.json -> rows of cells (class name first) for `per_class_headers`, best first."""
    if not doc:
        return []
    columns = per_class_columns(task, doc)
    headline = columns[0][0]
    rows: list[tuple[float, list[str]]] = []
    for name, values in (doc.get("classes") or {}).items():
        if not isinstance(values, Mapping):
            continue
        score = values.get(headline)
        rank = float(score) if isinstance(score, int | float) else -1.0
        rows.append((rank, [str(name), *[_cell(key, values.get(key)) for key, _h in columns]]))
    rows.sort(key=lambda r: -r[0])
    return [cells for _rank, cells in rows]


def chart_title(task: str) -> str:
    """The live chart's heading for `task` (the figure's own title stays empty: one heading)."""
    return chart_for(task).title


def metrics_panel(
    *,
    figure: rx.Var,
    title: rx.Var[str],
    points_count: rx.Var[int],
    points_label: rx.Var[str],
    finished: rx.Var[bool],
) -> rx.Component:
    """MetricsPanel: a job's live chart with its task's heading and "n epochs plotted" (a polite
    live region, so a screen reader hears the chart grow without focusing it).

    `figure` comes from components.charts.metrics_figure_json(rows, task) (or metrics_figure),
    the one chart style.
    """
    return rx.fragment(
        rx.hstack(
            rx.heading(title, as_="h2", size="4", color=tokens.TEXT, id="metrics-title"),
            rx.text(
                points_label,
                id="points-count",
                color=tokens.TEXT_MUTED,
                size="2",
                custom_attrs={"aria-live": "polite"},
            ),
            justify="between",
            align="baseline",
            width="100%",
        ),
        rx.box(
            rx.cond(
                points_count > 0,
                rx.plotly(
                    # Plotly JSON (a dict) or a figure: the component draws either.
                    data=figure.to(go.Figure),
                    config={"displaylogo": False, "responsive": True},
                    width="100%",
                    use_resize_handler=True,
                ),
                rx.center(
                    rx.text(
                        rx.cond(finished, "This job reported no epochs.", "Waiting for the first epoch…"),
                        color=tokens.TEXT_MUTED,
                    ),
                    height="160px",
                ),
            ),
            id="metrics-chart",
            width="100%",
            custom_attrs={"data-points": points_count.to_string()},
            role="figure",
            aria_label=title + ": " + points_label,
        ),
    )


def per_class_results(*, headers: rx.Var[list[str]], rows: rx.Var[list[list[str]]]) -> rx.Component:
    """The per-class table of the newest validation, its columns chosen by `per_class_headers`."""
    return rx.cond(
        rows.length() > 0,
        rx.table.root(
            rx.el.caption("Per-class results of the newest validation", class_name="sr-only"),
            rx.table.header(
                rx.table.row(rx.foreach(headers, lambda h: rx.table.column_header_cell(h, scope="col")))
            ),
            rx.table.body(
                rx.foreach(
                    rows,
                    lambda cells: rx.table.row(
                        rx.table.row_header_cell(cells[0]),
                        rx.foreach(cells[1:], lambda c: rx.table.cell(c)),
                    ),
                )
            ),
            id="per-class-table",
            width="100%",
            variant="surface",
            size="1",
        ),
        rx.text("No per-class results yet.", color=tokens.TEXT_MUTED, id="per-class-empty"),
    )
