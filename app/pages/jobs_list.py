"""/projects/[project_id]/jobs: jobs with filters, status indicators and queue positions."""

from __future__ import annotations

import reflex as rx

from components import tokens
from components.layout import card, field, page_shell
from components.status_indicator import status_indicator
from state.jobs_state import STATE_FILTERS, JobsListState

S = JobsListState


def _with_any(options: rx.Var, label: str) -> rx.Component:
    return [
        rx.el.option(label, value=""),
        rx.foreach(options, lambda o: rx.el.option(o["label"], value=o["value"])),
    ]


def filters() -> rx.Component:
    style = {
        "padding": "6px 8px",
        "border": f"1px solid {tokens.BORDER}",
        "border_radius": tokens.RADIUS["sm"],
        "background_color": tokens.SURFACE,
        "color": tokens.TEXT,
        "font_size": "14px",
        "min_height": "32px",
    }
    return rx.flex(
        field(
            "State",
            rx.el.select(
                rx.el.option("any state", value=""),
                *[rx.el.option(s, value=s) for s in STATE_FILTERS],
                id="filter-state",
                value=S.state_filter,
                on_change=lambda v: S.set_filter("state_filter", v),
                **style,
            ),
            html_for="filter-state",
        ),
        field(
            "Owner",
            rx.el.select(
                *_with_any(S.owners, "anyone"),
                id="filter-owner",
                value=S.owner_filter,
                on_change=lambda v: S.set_filter("owner_filter", v),
                **style,
            ),
            html_for="filter-owner",
        ),
        field(
            "Dataset version",
            rx.el.select(
                *_with_any(S.datasets, "any dataset"),
                id="filter-dataset",
                value=S.dataset_filter,
                on_change=lambda v: S.set_filter("dataset_filter", v),
                **style,
            ),
            html_for="filter-dataset",
        ),
        field(
            "Search by name",
            rx.input(
                id="filter-search",
                value=S.search,
                on_change=lambda v: S.set_filter("search", v).debounce(300),
                width="220px",
            ),
            html_for="filter-search",
        ),
        wrap="wrap",
        spacing="4",
        align="end",
    )


def jobs_table() -> rx.Component:
    def row(j: rx.Var) -> rx.Component:
        return rx.table.row(
            rx.table.cell(rx.link("#", j["id"], href=j["href"], color=tokens.PRIMARY)),
            rx.table.row_header_cell(rx.link(j["name"], href=j["href"], color=tokens.PRIMARY)),
            rx.table.cell(
                rx.hstack(
                    status_indicator(j["state"]),
                    rx.cond(j["queue"] != "", rx.text(j["queue"], size="1", color=tokens.TEXT_MUTED)),
                    spacing="2",
                    align="center",
                )
            ),
            rx.table.cell(j["owner"]),
            rx.table.cell(j["model"]),
            rx.table.cell(j["epoch"]),
            rx.table.cell(j["created"], white_space="nowrap"),
            custom_attrs={"data-job-id": j["id"], "data-queue": j["queue"]},
        )

    headers = ["ID", "Name", "State", "Owner", "Model", "Epoch", "Created"]
    return rx.table.root(
        rx.el.caption("Training jobs matching the filters", class_name="sr-only"),
        rx.table.header(
            rx.table.row(*[rx.table.column_header_cell(h, scope="col", color=tokens.TEXT) for h in headers])
        ),
        rx.table.body(rx.foreach(S.rows, row)),
        id="jobs-list",
        width="100%",
        variant="surface",
    )


def jobs_list_page() -> rx.Component:
    body = card(
        filters(),
        rx.cond(
            S.load_error != "",
            rx.callout(
                S.load_error, icon="triangle_alert", color_scheme="red", role="alert", id="jobs-error"
            ),
        ),
        rx.cond(
            S.loaded,
            rx.cond(
                S.rows.length() > 0,
                jobs_table(),
                rx.text("No jobs match these filters.", color=tokens.TEXT_MUTED, id="jobs-list-empty"),
            ),
            rx.hstack(rx.spinner(), rx.text("Loading jobs…"), align="center"),
        ),
    )
    return page_shell(
        rx.hstack(
            rx.link("← Project", href="/", color=tokens.PRIMARY),
            rx.link(
                "New training job",
                href="/projects/" + S.project_id.to_string() + "/train",
                color=tokens.PRIMARY,
            ),
            rx.link(
                "Compare runs",
                href="/projects/" + S.project_id.to_string() + "/compare",
                color=tokens.PRIMARY,
            ),
            spacing="5",
        ),
        body,
        title="Jobs",
        username=S.username,
        avatar_name=S.avatar_name,
        badge_color=S.badge_color,
        on_sign_out=S.sign_out,
    )
