"""/analytics: usage per project or per user (platform admins see every project)."""

from __future__ import annotations

import reflex as rx

from components import tokens
from components.layout import card, field, page_shell
from state.analytics_state import AnalyticsState

S = AnalyticsState
STYLE = {
    "padding": "6px 8px",
    "border": f"1px solid {tokens.BORDER}",
    "border_radius": tokens.RADIUS["sm"],
    "background_color": tokens.SURFACE,
    "color": tokens.TEXT,
    "font_size": "14px",
    "min_height": "32px",
}


def _chart(figure: rx.Var, title: str, id: str) -> rx.Component:
    return card(
        rx.box(
            rx.plotly(data=figure, config={"displaylogo": False, "responsive": True}, width="100%"),
            id=id,
            role="figure",
            aria_label=title,
        ),
        title=title,
    )


def analytics_page() -> rx.Component:
    controls = rx.flex(
        field(
            "Group by",
            rx.el.select(
                rx.el.option("project", value="project"),
                rx.el.option("user", value="user"),
                id="group-by",
                value=S.group_by,
                on_change=S.set_group_by,
                **STYLE,
            ),
            html_for="group-by",
        ),
        field(
            "Period",
            rx.el.select(
                *[rx.el.option(f"last {d} days", value=d) for d in ("7", "30", "90", "365")],
                id="period",
                value=S.days,
                on_change=S.set_days,
                **STYLE,
            ),
            html_for="period",
        ),
        rx.cond(S.is_admin, rx.badge("Platform admin: all projects", color_scheme="blue")),
        spacing="4",
        align="end",
        wrap="wrap",
    )
    table = rx.table.root(
        rx.el.caption("Usage summary", class_name="sr-only"),
        rx.table.header(
            rx.table.row(
                *[
                    rx.table.column_header_cell(h, scope="col")
                    for h in (
                        "Group",
                        "Jobs",
                        "Success rate",
                        "CPU hours",
                        "GPU hours",
                        "Queue wait (median / p90)",
                    )
                ]
            )
        ),
        rx.table.body(
            rx.foreach(
                S.rows,
                lambda r: rx.table.row(
                    rx.table.row_header_cell(r["group"]),
                    rx.table.cell(r["jobs"]),
                    rx.table.cell(r["success"]),
                    rx.table.cell(r["cpu"]),
                    rx.table.cell(r["gpu"]),
                    rx.table.cell(r["wait"]),
                ),
            )
        ),
        id="usage-table",
        width="100%",
        variant="surface",
    )
    return page_shell(
        card(
            controls,
            rx.cond(S.rows.length() > 0, table, rx.text("No jobs in this period.", id="usage-empty")),
        ),
        rx.grid(
            _chart(S.per_day, "Jobs per day", "chart-per-day"),
            _chart(S.success, "Success rate", "chart-success"),
            _chart(S.compute, "Compute hours (CPU vs GPU)", "chart-compute"),
            _chart(S.wait, "Queue wait", "chart-wait"),
            columns=rx.breakpoints(initial="1", md="2"),
            spacing="5",
            width="100%",
        ),
        title="Analytics",
        username=S.username,
        avatar_name=S.avatar_name,
        badge_color=S.badge_color,
        on_sign_out=S.sign_out,
    )
