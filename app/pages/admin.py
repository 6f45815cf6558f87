"""The platform administration page (`/admin`): accounts, the sign-up switch, the audit log."""

from __future__ import annotations

import reflex as rx

from app.pages.shared import maybe_error, notice, select, shell
from components import tokens
from components.avatar import avatar
from components.layout import card, field
from components.project_nav import (
    data_table,
    empty_state,
    loading_state,
    primary_button,
)
from state.admin_state import AdminState


def admin_page() -> rx.Component:
    A = AdminState
    user_row = lambda u: rx.table.row(  # noqa: E731
        rx.table.row_header_cell(
            rx.hstack(
                avatar(u["avatar_name"], u["badge_color"], username=u["username"]),
                rx.text(u["username"]),
                align="center",
                spacing="2",
            )
        ),
        rx.table.cell(u["email"]),
        rx.table.cell(rx.cond(u["platform_admin"] != "", "platform admin", "user")),
        rx.table.cell(
            rx.cond(
                u["active"] != "",
                rx.badge(
                    rx.icon("circle_check", size=12, aria_hidden="true"), "active", color_scheme="green"
                ),
                rx.badge(rx.icon("ban", size=12, aria_hidden="true"), "deactivated", color_scheme="gray"),
            )
        ),
        rx.table.cell(u["created"], white_space="nowrap"),
        rx.table.cell(
            rx.cond(
                u["you"] != "",
                rx.text("you", color=tokens.TEXT_MUTED, size="2"),
                rx.cond(
                    u["active"] != "",
                    rx.button(
                        "Deactivate",
                        size="1",
                        variant="outline",
                        color=tokens.DANGER,
                        on_click=A.set_active(u["id"], False),
                        aria_label="Deactivate " + u["username"],
                        id="deactivate-" + u["username"],
                    ),
                    rx.button(
                        "Activate",
                        size="1",
                        variant="outline",
                        on_click=A.set_active(u["id"], True),
                        aria_label="Activate " + u["username"],
                        id="activate-" + u["username"],
                    ),
                ),
            )
        ),
        custom_attrs={"data-username": u["username"]},
    )
    audit_row = lambda e: rx.table.row(  # noqa: E731
        rx.table.cell(e["at"], white_space="nowrap"),
        rx.table.cell(e["actor"]),
        rx.table.row_header_cell(rx.code(e["action"])),
        rx.table.cell(e["target"]),
        rx.table.cell(e["project"]),
        rx.table.cell(
            rx.match(
                e["result"],
                ("ok", rx.badge("ok", color_scheme="green")),
                (
                    "denied",
                    rx.badge(rx.icon("shield_x", size=12, aria_hidden="true"), "denied", color_scheme="red"),
                ),
                rx.badge(e["result"], color_scheme="amber"),
            )
        ),
        rx.table.cell(e["detail"]),
    )

    project_row = lambda p: rx.table.row(  # noqa: E731
        rx.table.row_header_cell(p["name"]),
        rx.table.cell(
            rx.form(
                rx.hstack(
                    # The row's project travels in the form (a per-row handler argument cannot be
                    # used inside the form's submit function).
                    rx.el.input(type="hidden", name="project_id", value=p["id"]),
                    rx.input(
                        name="priority",
                        type="number",
                        min=-10,
                        max=10,
                        step=1,
                        default_value=p["priority"],
                        key=p["id"] + ":" + p["priority"],
                        width="90px",
                        id="priority-" + p["id"],
                        aria_label="Priority of " + p["name"],
                    ),
                    rx.button(
                        "Save", size="1", variant="outline", type="submit", id="save-priority-" + p["id"]
                    ),
                    spacing="2",
                    align="center",
                ),
                on_submit=A.set_priority,
                reset_on_submit=False,
            )
        ),
        custom_attrs={"data-project-id": p["id"]},
    )

    def text_filter(id_: str, label: str, width: str = "150px", type_: str = "text") -> rx.Component:
        return field(
            label, rx.input(id=f"audit-{id_}", name=id_, type=type_, width=width), html_for=f"audit-{id_}"
        )

    filters = rx.form(
        rx.flex(
            text_filter("actor", "Actor (username)"),
            text_filter("action", "Action contains"),
            field(
                "Result",
                select("audit-result", "result", ["", "ok", "denied", "failed"]),
                html_for="audit-result",
            ),
            text_filter("project_id", "Project id", "100px"),
            text_filter("since", "From", "150px", "date"),
            text_filter("until", "To", "150px", "date"),
            primary_button(
                rx.icon("filter", size=16, aria_hidden="true"), "Filter", type="submit", id="audit-filter"
            ),
            spacing="3",
            align="end",
            wrap="wrap",
        ),
        on_submit=A.filter_audit,
        reset_on_submit=False,
        aria_label="Filter the audit log",
    )
    body = rx.vstack(
        notice(A.ad_notice, "admin-notice"),
        card(
            rx.hstack(
                rx.switch(
                    checked=A.ad_signup,
                    on_change=A.toggle_signup,
                    id="signup-switch",
                    aria_label="Allow self-service sign-up",
                ),
                rx.el.label("Anyone may create an account at /signup", html_for="signup-switch"),
                align="center",
                spacing="3",
            ),
            title="Sign-up",
        ),
        card(
            data_table(
                ["User", "Email", "Kind", "Status", "Created", ""],
                rx.foreach(A.ad_users, user_row),
                id="users-table",
                caption="All users",
            ),
            title="Users",
        ),
        card(
            rx.text(
                "Queued jobs are dispatched by their project's priority (higher first, -10 to 10), "
                "then in the order they were submitted.",
                size="2",
                color=tokens.TEXT_MUTED,
                margin_bottom="8px",
            ),
            data_table(
                ["Project", "Priority"],
                rx.foreach(A.ad_projects, project_row),
                id="projects-priority-table",
                caption="Projects in dispatch order",
            ),
            title="Project priority",
        ),
        card(
            filters,
            maybe_error(A.audit_error, "audit-error"),
            rx.cond(
                A.audit_items.length() > 0,
                data_table(
                    ["When (UTC)", "Actor", "Action", "Target", "Project", "Result", "Detail"],
                    rx.foreach(A.audit_items, audit_row),
                    id="audit-table",
                    caption="Audit log",
                    size="1",
                ),
                rx.cond(
                    A.audit_loading,
                    loading_state("Loading the audit log…", "audit-loading"),
                    empty_state(
                        "No audit events match these filters. Clear a filter to see more.", "audit-empty"
                    ),
                ),
            ),
            rx.hstack(
                rx.button(
                    "Newer",
                    variant="outline",
                    on_click=A.audit_page(-1),
                    disabled=A.audit_offset == 0,
                    id="audit-newer",
                ),
                rx.button(
                    "Older",
                    variant="outline",
                    on_click=A.audit_page(1),
                    disabled=~A.audit_more,
                    id="audit-older",
                ),
                spacing="3",
            ),
            title="Audit log",
        ),
        spacing="4",
        align="stretch",
        width="100%",
    )
    return shell(
        A,
        maybe_error(A.ad_error, "admin-error"),
        rx.cond(
            A.ad_allowed,
            body,
            rx.cond(
                A.ad_loading,
                loading_state("Loading…", "admin-loading"),
                empty_state(
                    "This page is for platform administrators. Ask one if you need a change.",
                    "admin-not-allowed",
                    icon="lock",
                ),
            ),
        ),
        title="Administration",
    )
