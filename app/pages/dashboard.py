"""/: the user's projects; datasets, the Train form and jobs of the selected project."""

from __future__ import annotations

import reflex as rx

from components import tokens
from components.layout import card, field, native_select, page_shell
from components.status_indicator import status_indicator
from state.dashboard_state import (
    DashboardState,
    hyperparameter_bounds,
    hyperparameter_defaults,
    model_options,
)

S = DashboardState


def _header_cell(text: str) -> rx.Component:
    return rx.table.column_header_cell(text, color=tokens.TEXT, scope="col")


def _table(headers: list[str], body: rx.Component, *, id: str, caption: str) -> rx.Component:
    return rx.table.root(
        rx.el.caption(caption, class_name="sr-only"),
        rx.table.header(rx.table.row(*[_header_cell(h) for h in headers])),
        rx.table.body(body),
        id=id,
        width="100%",
        variant="surface",
    )


def _empty(text: str, id: str) -> rx.Component:
    return rx.text(text, color=tokens.TEXT_MUTED, id=id)


def projects_bar() -> rx.Component:
    return rx.hstack(
        field(
            "Project",
            native_select(
                S.projects,
                id="project-select",
                name="project",
                value=S.selected_project_id,
                on_change=S.select_project,
                min_width="260px",
            ),
            html_for="project-select",
        ),
        rx.cond(
            S.project_role != "",
            rx.badge(
                rx.text("Your role: ", S.project_role),
                color_scheme="gray",
                variant="soft",
                size="2",
                id="project-role",
            ),
        ),
        align="end",
        spacing="4",
    )


def datasets_card() -> rx.Component:
    row = lambda d: rx.table.row(  # noqa: E731
        rx.table.row_header_cell(d["name"]),
        rx.table.cell(d["version"]),
        rx.table.cell(d["images"]),
        rx.table.cell(d["classes"]),
        rx.table.cell(d["splits"]),
    )
    return card(
        rx.cond(
            S.datasets.length() > 0,
            _table(
                ["Name", "Version", "Images", "Classes", "Splits"],
                rx.foreach(S.datasets, row),
                id="datasets-table",
                caption="Datasets of the selected project",
            ),
            _empty(
                "No datasets yet: upload a YOLO zip through the API (POST /api/v1/projects/{id}/datasets).",
                "datasets-empty",
            ),
        ),
        title="Datasets",
    )


def _number(name: str) -> rx.Component:
    low, high = hyperparameter_bounds(name)
    return field(
        name.capitalize() if name != "imgsz" else "Image size (px)",
        rx.input(
            id=name,
            name=name,
            type="number",
            min=low,
            max=high,
            step="1",
            required=True,
            default_value=hyperparameter_defaults()[name],
            width="140px",
        ),
        html_for=name,
    )


def train_card() -> rx.Component:
    models = model_options()
    form = rx.form(
        rx.vstack(
            rx.flex(
                field(
                    "Dataset version",
                    native_select(
                        S.dataset_options, id="dataset-version", name="dataset_version_id", min_width="260px"
                    ),
                    html_for="dataset-version",
                ),
                field(
                    "Model",
                    rx.el.select(
                        *[rx.el.option(m["label"], value=m["value"]) for m in models],
                        id="model",
                        name="model",
                        padding="6px 8px",
                        border=f"1px solid {tokens.BORDER}",
                        border_radius=tokens.RADIUS["sm"],
                        background_color=tokens.SURFACE,
                        color=tokens.TEXT,
                        font_size="14px",
                        min_height="32px",
                    ),
                    html_for="model",
                ),
                field(
                    "Run name (optional)",
                    rx.input(id="job-name", name="name", max_length=120, width="220px"),
                    html_for="job-name",
                ),
                wrap="wrap",
                spacing="4",
            ),
            rx.flex(_number("epochs"), _number("imgsz"), _number("batch"), wrap="wrap", spacing="4"),
            rx.cond(
                S.form_error != "",
                rx.callout(
                    S.form_error, icon="triangle_alert", color_scheme="red", role="alert", id="train-error"
                ),
            ),
            rx.hstack(
                rx.button(
                    rx.cond(S.submitting, rx.spinner(size="2"), rx.icon("play", size=16, aria_hidden="true")),
                    "Start training",
                    type="submit",
                    id="start-training",
                    disabled=S.submitting | (S.dataset_options.length() == 0),
                    background_color=tokens.PRIMARY,
                    color=tokens.PRIMARY_TEXT,
                ),
            ),
            spacing="4",
            align="start",
        ),
        on_submit=S.start_training,
        reset_on_submit=False,
        aria_label="Train a model",
    )
    return card(
        rx.cond(
            S.can_train,
            form,
            _empty("You can view this project; training needs the member role.", "train-not-allowed"),
        ),
        title="Train",
    )


def jobs_card() -> rx.Component:
    row = lambda j: rx.table.row(  # noqa: E731
        rx.table.cell(rx.link("#", j["id"], href=j["href"], color=tokens.PRIMARY)),
        rx.table.row_header_cell(rx.link(j["name"], href=j["href"], color=tokens.PRIMARY)),
        rx.table.cell(status_indicator(j["state"])),
        rx.table.cell(j["epoch"]),
        rx.table.cell(j["created"], white_space="nowrap"),
        custom_attrs={"data-job-id": j["id"]},
    )
    return card(
        rx.cond(
            S.jobs.length() > 0,
            _table(
                ["ID", "Name", "State", "Epoch", "Created"],
                rx.foreach(S.jobs, row),
                id="jobs-table",
                caption="Training jobs of the selected project",
            ),
            _empty("No training jobs yet.", "jobs-empty"),
        ),
        title="Jobs",
    )


def dashboard_page() -> rx.Component:
    return page_shell(
        rx.cond(
            S.load_error != "",
            rx.callout(S.load_error, icon="triangle_alert", color_scheme="red", role="alert"),
        ),
        rx.cond(
            S.projects.length() > 0,
            rx.vstack(
                projects_bar(),
                datasets_card(),
                train_card(),
                jobs_card(),
                spacing="5",
                align="stretch",
                width="100%",
            ),
            _empty("You are not a member of any project yet.", "projects-empty"),
        ),
        title="Projects",
        username=S.username,
        avatar_name=S.avatar_name,
        badge_color=S.badge_color,
        on_sign_out=S.sign_out,
    )
