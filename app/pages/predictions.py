"""/projects/[project_id]/predictions?jobs=1,2: models' predictions side by side (layout only)."""

from __future__ import annotations

import reflex as rx

from components import tokens
from components.layout import card, field, page_shell
from components.prediction_grid import legend, prediction_grid
from state.predictions_state import PredictionsState

S = PredictionsState
SELECT = {
    "padding": "6px 8px",
    "border": f"1px solid {tokens.BORDER}",
    "border_radius": tokens.RADIUS["sm"],
    "background_color": tokens.SURFACE,
    "color": tokens.TEXT,
    "font_size": "14px",
    "min_height": "32px",
}


def filters() -> rx.Component:
    return rx.hstack(
        field(
            "Split",
            rx.el.select(
                rx.el.option("Validation", value="val"),
                rx.el.option("Test", value="test"),
                id="prediction-split",
                value=S.split,
                on_change=S.set_split,
                **SELECT,
            ),
            html_for="prediction-split",
        ),
        field(
            "Class",
            rx.el.select(
                rx.el.option("Any class", value="any"),
                rx.foreach(S.classes, lambda c: rx.el.option(c, value=c)),
                id="prediction-class",
                value=rx.cond(S.class_name == "", "any", S.class_name),
                on_change=S.set_class_name,
                **SELECT,
            ),
            html_for="prediction-class",
        ),
        field(
            "Wrong in",
            rx.el.select(
                rx.el.option("Any model", value="any"),
                rx.foreach(S.jobs, lambda j: rx.el.option(j["name"], value=j["id"])),
                id="prediction-wrong-in",
                value=rx.cond(S.wrong_in == "", "any", S.wrong_in),
                on_change=S.set_wrong_in,
                **SELECT,
            ),
            html_for="prediction-wrong-in",
        ),
        rx.el.label(
            rx.checkbox(checked=S.disagree, on_change=S.set_disagree, id="prediction-disagree"),
            "Models disagree",
            display="flex",
            gap="6px",
            align_items="center",
            font_size="14px",
            color=tokens.TEXT,
        ),
        spacing="4",
        wrap="wrap",
        align="end",
    )


def pager() -> rx.Component:
    return rx.hstack(
        rx.button(
            "Previous",
            on_click=S.previous_page,
            disabled=~S.has_previous,
            variant="outline",
            id="prediction-prev",
        ),
        rx.text(S.page_label, size="2", color=tokens.TEXT_MUTED, id="prediction-count"),
        rx.button(
            "Next", on_click=S.next_page, disabled=~S.has_next, variant="outline", id="prediction-next"
        ),
        rx.cond(S.loading, rx.spinner(size="2", id="prediction-loading")),
        spacing="3",
        align="center",
    )


def predictions_page() -> rx.Component:
    return page_shell(
        rx.link(
            "← Compare runs", href="/projects/" + S.project_id.to_string() + "/compare", color=tokens.PRIMARY
        ),
        rx.cond(
            S.error != "",
            rx.callout(
                S.error, icon="triangle_alert", color_scheme="red", role="alert", id="prediction-error"
            ),
        ),
        card(filters(), legend(), pager(), title="Filters"),
        card(prediction_grid(S.rows), title="Images"),
        title="Compare predictions",
        username=S.username,
        avatar_name=S.avatar_name,
        badge_color=S.badge_color,
        on_sign_out=S.sign_out,
    )
