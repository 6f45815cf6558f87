"""People pages: members (`/projects/[project_id]/members`), sign-up (`/signup`), account
settings (`/account`) and platform administration (`/admin`)."""

from __future__ import annotations

import reflex as rx

from components import tokens
from components.avatar import avatar
from components.layout import auth_input, auth_shell, card, field, labelled_input, page_shell
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
from state.people_state import (
    BADGE_COLOURS,
    QUOTA_LABELS,
    ROLES,
    AccountState,
    AdminState,
    MembersState,
    SignupState,
)

M = MembersState


def _select(id: str, name: str, options: list[str], default: str = "", **props) -> rx.Component:
    return rx.el.select(
        *[rx.el.option(o, value=o) for o in options],
        id=id,
        name=name,
        default_value=default or None,
        padding="6px 8px",
        border=f"1px solid {tokens.BORDER}",
        border_radius=tokens.RADIUS["sm"],
        background_color=tokens.SURFACE,
        color=tokens.TEXT,
        min_height="32px",
        **props,
    )


def _notice(text: rx.Var[str], id: str) -> rx.Component:
    return rx.cond(
        text != "",
        rx.callout(text, icon="circle_check", color_scheme="green", role="status", id=id, width="100%"),
    )


def _maybe_error(text: rx.Var[str], id: str) -> rx.Component:
    return rx.cond(text != "", error_state(text, id))


def _shell(state: type[rx.State], *children: rx.Component, title: str) -> rx.Component:
    return page_shell(
        *children,
        title=title,
        username=state.username,
        avatar_name=state.avatar_name,
        badge_color=state.badge_color,
        on_sign_out=state.sign_out,
    )


# --- members -------------------------------------------------------------------------------------


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
            field("Role", _select("invite-role", "role", ROLES, "member"), html_for="invite-role"),
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
            "when the running limit is reached, new jobs wait in the queue until one finishes.",
            size="2",
            color=tokens.TEXT_MUTED,
            id="quotas-hint",
        ),
        _notice(M.mb_quota_notice, "quotas-notice"),
        _maybe_error(M.mb_quota_error, "quotas-error"),
        title="Job quotas",
    )


def members_page() -> rx.Component:
    return _shell(
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
                _notice(M.mb_notice, "members-notice"),
                _maybe_error(M.mb_action_error, "members-action-error"),
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


# --- sign-up -------------------------------------------------------------------------------------


def signup_page() -> rx.Component:
    S = SignupState
    form = rx.form(
        rx.vstack(
            auth_input("username", "Username (3–64 letters, digits, - or _)", "text", "username"),
            auth_input("email", "Email (optional)", "email", "email", required=False),
            auth_input("password", "Password (at least 8 characters)", "password", "new-password"),
            auth_input("confirm", "Password again", "password", "new-password"),
            _maybe_error(S.signup_error, "signup-error"),
            primary_button(
                "Create account", type="submit", size="3", width="100%", id="sign-up", disabled=S.signup_busy
            ),
            spacing="4",
            align="stretch",
            width="100%",
        ),
        on_submit=S.sign_up,
        reset_on_submit=False,
        aria_label="Create an account",
        width="100%",
    )
    return auth_shell(
        "Create an account",
        rx.cond(
            ~S.signup_loaded,
            loading_state("Loading…", "signup-loading"),
            rx.cond(
                S.signup_enabled,
                form,
                rx.callout(
                    "Sign-up is switched off on this platform. Ask an administrator to create an "
                    "account "
                    "for you or to switch sign-up on.",
                    icon="lock",
                    color_scheme="gray",
                    id="signup-closed",
                ),
            ),
        ),
        rx.text(
            "Already have an account? ",
            rx.link("Sign in", href="/login", color=tokens.PRIMARY, underline="always"),
        ),
        max_width="420px",
    )


# --- account settings ----------------------------------------------------------------------------


def account_page() -> rx.Component:
    A = AccountState
    profile = rx.form(
        rx.flex(
            rx.vstack(
                rx.text("Preview", size="2", weight="medium"),
                avatar(A.avatar_name, A.badge_color, username=A.username, size="48px"),
                spacing="1",
            ),
            field(
                "Initials (1–3 characters)",
                rx.input(
                    id="avatar-name",
                    name="avatar_name",
                    default_value=A.avatar_name,
                    key=A.avatar_name,
                    max_length=3,
                    width="120px",
                ),
                html_for="avatar-name",
            ),
            field(
                "Badge colour",
                rx.el.select(
                    *[rx.el.option(c, value=c) for c in BADGE_COLOURS],
                    rx.el.option(A.badge_color, value=A.badge_color),
                    id="badge-color",
                    name="badge_color",
                    value=A.badge_color,
                    on_change=A.set_badge_preview,
                    padding="6px 8px",
                    border=f"1px solid {tokens.BORDER}",
                    border_radius=tokens.RADIUS["sm"],
                    background_color=tokens.SURFACE,
                    color=tokens.TEXT,
                    min_height="32px",
                ),
                html_for="badge-color",
            ),
            primary_button("Save profile", type="submit", id="profile-save"),
            spacing="4",
            align="end",
            wrap="wrap",
        ),
        on_submit=A.save_profile,
        reset_on_submit=False,
        aria_label="Profile",
    )
    password = rx.form(
        rx.flex(
            labelled_input(
                "current-password",
                "Current password",
                "password",
                "current-password",
                name="current_password",
            ),
            labelled_input("new-password", "New password", "password", "new-password", name="new_password"),
            labelled_input(
                "confirm-password", "New password again", "password", "new-password", name="confirm_password"
            ),
            primary_button("Change password", type="submit", id="password-save"),
            spacing="4",
            align="end",
            wrap="wrap",
        ),
        on_submit=A.change_password,
        reset_on_submit=True,
        aria_label="Change password",
    )
    token_row = lambda t: rx.table.row(  # noqa: E731
        rx.table.row_header_cell(t["name"]),
        rx.table.cell(t["created"]),
        rx.table.cell(t["expires"]),
        rx.table.cell(t["last_used"]),
        rx.table.cell(
            rx.button(
                "Revoke",
                size="1",
                variant="outline",
                color=tokens.DANGER,
                on_click=A.revoke(t["id"]),
                aria_label="Revoke token " + t["name"],
            )
        ),
        custom_attrs={"data-token-name": t["name"]},
    )
    token_form = rx.form(
        rx.flex(
            field(
                "Token name",
                rx.input(id="token-name", name="name", required=True, max_length=120),
                html_for="token-name",
            ),
            field(
                "Valid for (days)",
                rx.input(
                    id="token-days",
                    name="days",
                    type="number",
                    min="1",
                    max="366",
                    default_value="90",
                    width="110px",
                ),
                html_for="token-days",
            ),
            primary_button("Create token", type="submit", id="token-create"),
            spacing="4",
            align="end",
            wrap="wrap",
        ),
        on_submit=A.create_token,
        reset_on_submit=True,
        aria_label="Create a personal API token",
    )
    return _shell(
        A,
        rx.cond(
            A.ac_loading,
            loading_state("Loading your account…", "account-loading"),
            rx.vstack(
                card(
                    profile,
                    _notice(A.profile_notice, "profile-notice"),
                    _maybe_error(A.profile_error, "profile-error"),
                    title="Profile",
                ),
                card(
                    password,
                    _notice(A.password_notice, "password-notice"),
                    _maybe_error(A.password_error, "password-error"),
                    title="Password",
                ),
                card(
                    rx.text(
                        "Personal tokens let scripts and CI call the REST API as you "
                        "(Authorization: Bearer …).",
                        color=tokens.TEXT_MUTED,
                        size="2",
                    ),
                    token_form,
                    rx.cond(
                        A.new_token != "",
                        rx.callout(
                            rx.vstack(
                                rx.text("Copy this token now: it is shown only once."),
                                rx.code(A.new_token, id="new-token", word_break="break-all"),
                            ),
                            icon="key_round",
                            color_scheme="green",
                            role="status",
                        ),
                    ),
                    _maybe_error(A.token_error, "token-error"),
                    rx.cond(
                        A.ac_tokens.length() > 0,
                        data_table(
                            ["Name", "Created", "Expires", "Last used", ""],
                            rx.foreach(A.ac_tokens, token_row),
                            id="tokens-table",
                            caption="Your personal API tokens",
                        ),
                        empty_state(
                            "No personal tokens yet. Create one above for scripts and CI.", "tokens-empty"
                        ),
                    ),
                    title="Personal API tokens",
                ),
                spacing="5",
                align="stretch",
                width="100%",
            ),
        ),
        title="Account settings",
    )


# --- platform administration ---------------------------------------------------------------------


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
                _select("audit-result", "result", ["", "ok", "denied", "failed"]),
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
        _notice(A.ad_notice, "admin-notice"),
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
            filters,
            _maybe_error(A.audit_error, "audit-error"),
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
    return _shell(
        A,
        _maybe_error(A.ad_error, "admin-error"),
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
