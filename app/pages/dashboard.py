"""/: the projects home, a grid of project cards; then datasets, Train links and jobs of the picked one."""

from __future__ import annotations

import reflex as rx

from components import tokens
from components.layout import card, page_shell
from components.permission_gate import permission_gate
from components.project_card import project_grid
from components.status_indicator import status_indicator
from services.domain.permissions import Action
from state.dashboard_state import DashboardState

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


def projects_grid() -> rx.Component:
    return rx.vstack(
        rx.heading("Your projects", as_="h2", size="5", color=tokens.TEXT),
        project_grid(S.project_cards, selected_id=S.selected_project_id, on_select=S.select_project),
        spacing="3",
        width="100%",
        align="stretch",
    )


def selected_heading() -> rx.Component:
    """Names the project whose datasets and jobs follow, so the panels are not anonymous."""
    return rx.hstack(
        rx.heading(S.selected_project_name, as_="h2", size="5", color=tokens.TEXT, id="selected-project"),
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
        align="center",
        spacing="3",
        padding_top=tokens.SPACE["md"],
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


def train_card() -> rx.Component:
    """Links to the pages of the selected project: the generated training form and the job views."""
    base = "/projects/" + S.selected_project_id

    def go(text: str, suffix: str, icon: str, id: str) -> rx.Component:
        return rx.link(
            rx.hstack(rx.icon(icon, size=16, aria_hidden="true"), rx.text(text, as_="span"), spacing="2"),
            href=base + suffix,
            id=id,
            color=tokens.PRIMARY,
            weight="medium",
        )

    return card(
        rx.flex(
            permission_gate(
                go("New training job", "/train", "play", "new-training-job"),
                allowed=S.can_train,
                action=Action.job_create,
                what="Starting training",
                id="new-training-job",
            ),
            go("All jobs", "/jobs", "list", "all-jobs-link"),
            go("Compare runs", "/compare", "chart_line", "compare-link"),
            go("Sweeps", "/sweeps", "sliders_horizontal", "sweeps-link"),
            go("Models", "/models", "box", "models-link"),
            wrap="wrap",
            spacing="5",
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
                projects_grid(),
                selected_heading(),
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
