"""/jobs/[job_id]: status, live metrics chart, logs, artifacts, Cancel."""

from __future__ import annotations

import reflex as rx

from components import tokens
from components.layout import card, page_shell
from components.status_indicator import status_indicator
from state.job_state import JobPageState

S = JobPageState


def _fact(label: str, value: rx.Component | rx.Var | str, id: str) -> rx.Component:
    return rx.vstack(
        rx.text(label, size="1", color=tokens.TEXT_MUTED, weight="medium", as_="div"),
        rx.box(value, id=id, color=tokens.TEXT, font_size="14px"),
        spacing="1",
        min_width="140px",
    )


def summary_card() -> rx.Component:
    return card(
        rx.flex(
            _fact("State", status_indicator(S.job_state, live=True), "job-state"),
            _fact("Epoch", S.epoch_text, "job-epoch"),
            _fact("Model", S.model, "job-model"),
            _fact("Device", S.device, "job-device"),
            _fact(
                "MLflow run", rx.cond(S.mlflow_run_id != "", rx.code(S.mlflow_run_id), "—"), "job-mlflow-run"
            ),
            _fact("Created", S.created, "job-created"),
            wrap="wrap",
            spacing="6",
        ),
        rx.cond(
            S.error_message != "",
            rx.callout(
                rx.text(rx.cond(S.error_kind != "", rx.text.strong(S.error_kind, ": "), ""), S.error_message),
                icon="circle_x",
                color_scheme="red",
                role="alert",
                id="job-error",
            ),
        ),
        rx.cond(
            S.can_cancel,
            rx.hstack(
                rx.button(
                    rx.cond(S.cancelling, rx.spinner(size="2"), rx.icon("ban", size=16, aria_hidden="true")),
                    "Cancel job",
                    on_click=S.cancel,
                    disabled=S.cancelling,
                    background_color=tokens.DANGER,
                    color=tokens.PRIMARY_TEXT,
                    id="cancel-job",
                ),
            ),
        ),
        rx.cond(S.cancel_message != "", rx.text(S.cancel_message, id="cancel-message", role="status")),
    )


def chart_card() -> rx.Component:
    return card(
        rx.hstack(
            rx.heading("Loss and mAP per epoch", as_="h2", size="4", color=tokens.TEXT),
            rx.text(
                S.points_label,
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
                S.points_count > 0,
                rx.plotly(
                    data=S.figure,
                    config={"displaylogo": False, "responsive": True},
                    width="100%",
                    use_resize_handler=True,
                ),
                rx.center(
                    rx.text(
                        rx.cond(S.finished, "This job reported no epochs.", "Waiting for the first epoch…"),
                        color=tokens.TEXT_MUTED,
                    ),
                    height="160px",
                ),
            ),
            id="metrics-chart",
            width="100%",
            custom_attrs={"data-points": S.points_count.to_string()},
            role="img",
            aria_label="Chart: " + S.points_label,
        ),
    )


def logs_card() -> rx.Component:
    return card(
        rx.cond(
            S.log_lines.length() > 0,
            rx.el.pre(
                rx.foreach(S.log_lines, lambda line: rx.text(line, as_="div")),
                id="job-logs",
                font_family=tokens.MONO_FAMILY,
                font_size="12px",
                background_color=tokens.TEXT,
                color="#e2e8f0",
                padding=tokens.SPACE["md"],
                border_radius=tokens.RADIUS["sm"],
                overflow_x="auto",
                max_height="320px",
                overflow_y="auto",
                tab_index=0,
                aria_label="Last log lines",
            ),
            rx.text("No log lines yet.", color=tokens.TEXT_MUTED, id="job-logs-empty"),
        ),
        title="Last log lines",
    )


def artifacts_card() -> rx.Component:
    return card(
        rx.cond(
            S.artifacts.length() > 0,
            rx.el.ul(
                rx.foreach(
                    S.artifacts,
                    lambda a: rx.el.li(
                        rx.text(a["name"], as_="span", weight="medium"),
                        ": ",
                        rx.code(a["uri"], word_break="break-all"),
                    ),
                ),
                id="job-artifacts",
                padding_left=tokens.SPACE["md"],
                list_style_type="disc",
            ),
            rx.text(
                rx.cond(
                    S.finished,
                    "This job left no artifacts.",
                    "No artifacts yet: they appear when the job finishes.",
                ),
                color=tokens.TEXT_MUTED,
                id="job-artifacts-empty",
            ),
        ),
        title="Artifacts",
    )


def job_page() -> rx.Component:
    body = rx.cond(
        S.not_found != "",
        rx.callout(S.not_found, icon="triangle_alert", color_scheme="red", role="alert", id="job-not-found"),
        rx.cond(
            S.loaded,
            rx.vstack(
                summary_card(),
                chart_card(),
                logs_card(),
                artifacts_card(),
                spacing="5",
                align="stretch",
                width="100%",
            ),
            rx.hstack(rx.spinner(), rx.text("Loading job…"), align="center"),
        ),
    )
    return page_shell(
        rx.link("← All jobs", href="/", color=tokens.PRIMARY, id="back-to-jobs"),
        body,
        title=rx.cond(S.job_name != "", S.job_name, "Job"),
        username=S.username,
        avatar_name=S.avatar_name,
        badge_color=S.badge_color,
        on_sign_out=S.sign_out,
    )
