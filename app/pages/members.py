"""The project members page (`/projects/[project_id]/members`): members, roles and job quotas."""

from __future__ import annotations

import reflex as rx

from app.pages.shared import maybe_error, notice, select, shell
from components import tokens
from components.layout import card, field
from components.permission_gate import permission_gate
from components.project_nav import (
    data_table,
    empty_state,
    error_state,
    loading_state,
    primary_button,
    project_nav,
)
from components.user_avatar_card import user_avatar_card
from services.domain.models import MAX_QUOTA
from services.domain.permissions import Action
from state.members_state import QUOTA_LABELS, ROLES, MembersState

M = MembersState


def members_table() -> rx.Component:
    def row(m: rx.Var) -> rx.Component:
        controls = rx.hstack(
            rx.el.label("Role of " + m["username"], html_for="role-" + m["user_id"], class_name="sr-only"),
            rx.el.select(
                *[rx.el.option(r, value=r) for r in ROLES],
                id="role-" + m["user_id"],
                value=m["role"],
                on_change=lambda value: M.change_role(m["user_id"], value),
                disabled=M.mb_busy,
                padding="4px 6px",
                border=f"1px solid {tokens.BORDER}",
                border_radius=tokens.RADIUS["sm"],
                background_color=tokens.SURFACE,
                color=tokens.TEXT,
            ),
            rx.button(
                rx.icon("user_minus", size=14, aria_hidden="true"),
                "Remove",
                size="1",
                variant="outline",
                color=tokens.DANGER,
                on_click=M.remove(m["user_id"]),
                disabled=M.mb_busy,
                aria_label="Remove " + m["username"],
                id="remove-" + m["user_id"],
            ),
            spacing="2",
            align="center",
        )
        return rx.table.row(
            rx.table.row_header_cell(
                user_avatar_card(
                    username=m["username"],
                    avatar_name=m["avatar_name"],
                    badge_color=m["badge_color"],
                    role=m["role"],
                    you=m["you"] != "",
                )
            ),
            rx.table.cell(
                permission_gate(
                    controls,
                    allowed=M.can_manage,
                    action=Action.members_manage,
                    what="Changing members",
                )
            ),
            custom_attrs={"data-username": m["username"], "data-role": m["role"]},
        )

    return data_table(
        ["Member and role", "Manage"],
        rx.foreach(M.mb_rows, row),
        id="members-table",
        caption="Project members",
    )


def invite_form() -> rx.Component:
    return rx.form(
        rx.flex(
            field(
                "Username",
                rx.input(id="invite-username", name="username", required=True, width="220px", max_length=64),
                html_for="invite-username",
            ),
            field("Role", select("invite-role", "role", ROLES, "member"), html_for="invite-role"),
            primary_button(
                rx.icon("user_plus", size=16, aria_hidden="true"), "Invite", type="submit", id="invite-submit"
            ),
            spacing="3",
            align="end",
            wrap="wrap",
        ),
        on_submit=M.invite,
        reset_on_submit=True,
        aria_label="Invite a member",
    )


def _quota_input(name: str, id: str) -> rx.Component:
    return field(
        QUOTA_LABELS[name],
        rx.input(
            id=id,
            name=name,
            type="number",
            min=1,
            max=MAX_QUOTA,
            step=1,
            placeholder="no limit",
            default_value=M.mb_quotas.get(name, ""),
            width="180px",
            custom_attrs={"aria-describedby": "quotas-hint"},
        ),
        html_for=id,
    )


def quotas_form() -> rx.Component:
    return rx.form(
        rx.flex(
            _quota_input("max_running_jobs", "quota-running"),
            _quota_input("max_queued_jobs", "quota-queued"),
            _quota_input("max_gpus", "quota-gpus"),
            primary_button(
                rx.cond(M.mb_quota_busy, rx.spinner(size="2"), rx.icon("gauge", size=16, aria_hidden="true")),
                "Save quotas",
                type="submit",
                disabled=M.mb_quota_busy,
                id="quotas-submit",
            ),
            spacing="3",
            align="end",
            wrap="wrap",
        ),
        on_submit=M.save_quotas,
        reset_on_submit=False,
        key=M.mb_quota_key,
        aria_label="Job quotas",
        id="quotas-form",
    )


def quotas_card() -> rx.Component:
    return card(
        rx.text(M.mb_quotas.get("summary", ""), id="quota-summary", size="2"),
        permission_gate(
            quotas_form(),
            allowed=M.can_manage_quotas,
            action=Action.quotas_manage,
            what="Changing quotas",
            id="quotas",
        ),
        rx.text(
            "Leave a box empty for no limit. When the waiting limit is reached, new jobs are refused; "
            "when the running or GPU limit is reached, new jobs wait in the queue until one finishes.",
            size="2",
            color=tokens.TEXT_MUTED,
            id="quotas-hint",
        ),
        notice(M.mb_quota_notice, "quotas-notice"),
        maybe_error(M.mb_quota_error, "quotas-error"),
        title="Job quotas",
    )


def members_page() -> rx.Component:
    return shell(
        M,
        project_nav(M.mb_project_id, "Members", M.mb_project_name),
        rx.cond(
            M.mb_error != "",
            error_state(M.mb_error, "members-error"),
            rx.vstack(
                card(
                    permission_gate(
                        invite_form(),
                        allowed=M.can_manage,
                        action=Action.members_manage,
                        what="Inviting",
                        id="invite",
                    ),
                    title="Invite someone",
                ),
                notice(M.mb_notice, "members-notice"),
                maybe_error(M.mb_action_error, "members-action-error"),
                card(
                    rx.cond(
                        M.mb_rows.length() > 0,
                        members_table(),
                        rx.cond(
                            M.mb_loading,
                            loading_state("Loading members…", "members-loading"),
                            empty_state("No members to show.", "members-empty"),
                        ),
                    ),
                    rx.text(
                        "Admins manage members, viewers and admins; only owners add, change or remove "
                        "owners. "
                        "The last owner stays until ownership is transferred.",
                        size="2",
                        color=tokens.TEXT_MUTED,
                    ),
                    title="Members",
                ),
                quotas_card(),
                spacing="4",
                align="stretch",
                width="100%",
            ),
        ),
        title="Members",
    )
