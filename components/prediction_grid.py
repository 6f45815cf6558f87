"""The prediction views' image grid: each image once per model (and once with the ground truth),
boxes drawn as CSS overlays over a thumbnail the browser loads straight from object storage.

Rows come from `state.predictions_state.page_rows`: `{"path", "src", "cells": [{"title",
"caption", "verdict", "boxes": [{"left", "top", "width", "height", "border", "kind", "label"}]}]}`.
"""

from __future__ import annotations

import reflex as rx

from components import tokens

THUMB_WIDTH = "220px"
LEGEND = (
    ("tp", "right (true positive)"),
    ("fp", "false detection"),
    ("missed", "missed object"),
    ("truth", "ground truth"),
)


def legend() -> rx.Component:
    """What each colour means (the boxes also say it in their labels)."""
    return rx.hstack(
        *[
            rx.hstack(
                rx.box(width="14px", height="10px", border=f"2px solid {tokens.VERDICT[kind]}"),
                rx.text(text, size="1", color=tokens.TEXT_MUTED),
                spacing="1",
                align="center",
            )
            for kind, text in LEGEND
        ],
        spacing="4",
        wrap="wrap",
        id="prediction-legend",
    )


def _overlay(b: rx.Var) -> rx.Component:
    return rx.box(
        rx.text(
            b["label"],
            size="1",
            position="absolute",
            top="-1px",
            left="0",
            padding="0 2px",
            background_color="rgba(255,255,255,0.85)",
            color=tokens.TEXT,
            white_space="nowrap",
            font_size="10px",
            line_height="12px",
        ),
        position="absolute",
        left=b["left"],
        top=b["top"],
        width=b["width"],
        height=b["height"],
        border=b["border"],
        box_sizing="border-box",
        pointer_events="none",
        custom_attrs={"data-kind": b["kind"]},
        class_name="prediction-box",
    )


def _cell(src: rx.Var, path: rx.Var, cell: rx.Var) -> rx.Component:
    return rx.vstack(
        rx.text(cell["title"], size="1", weight="medium", color=tokens.TEXT, trim="both"),
        rx.box(
            rx.image(src=src, alt=path, width="100%", height="auto", display="block", loading="lazy"),
            rx.foreach(cell["boxes"].to(list[dict[str, str]]), _overlay),
            position="relative",
            width=THUMB_WIDTH,
            line_height="0",
        ),
        rx.text(cell["caption"], size="1", color=tokens.TEXT_MUTED),
        spacing="1",
        padding="6px",
        border=rx.cond(
            cell["verdict"] == "wrong",
            f"2px solid {tokens.VERDICT['fp']}",
            f"1px solid {tokens.BORDER}",
        ),
        border_radius=tokens.RADIUS["sm"],
        custom_attrs={"data-verdict": cell["verdict"]},
        class_name="prediction-cell",
    )


def prediction_row(row: rx.Var) -> rx.Component:
    """One image: its path, then the ground truth and each model side by side."""
    return rx.vstack(
        rx.text(row["path"], size="1", color=tokens.TEXT_MUTED, font_family=tokens.MONO_FAMILY),
        rx.hstack(
            rx.foreach(row["cells"].to(list[dict]), lambda c: _cell(row["src"], row["path"], c)),
            spacing="2",
            wrap="wrap",
            align="start",
        ),
        spacing="1",
        class_name="prediction-row",
        custom_attrs={"data-path": row["path"]},
        width="100%",
    )


def prediction_grid(rows: rx.Var) -> rx.Component:
    return rx.vstack(rx.foreach(rows, prediction_row), spacing="4", width="100%", id="prediction-grid")
