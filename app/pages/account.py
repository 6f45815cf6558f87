"""The account page (`/account`): profile, password and personal API tokens."""

from __future__ import annotations

import reflex as rx

from app.pages.shared import maybe_error, notice, shell
from components import tokens
from components.avatar import avatar
from components.layout import card, field, labelled_input
from components.project_nav import (
    data_table,
    empty_state,
    loading_state,
    primary_button,
)
from state.account_state import BADGE_COLOURS, AccountState


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
    inbox_row = lambda n: rx.el.li(  # noqa: E731
        rx.hstack(
            rx.cond(n["unread"] != "", rx.badge("new", color_scheme="blue"), rx.fragment()),
            rx.link(n["title"], href=n["link"]),
            rx.text(n["when"], size="1", color=tokens.TEXT_MUTED, as_="span"),
            spacing="2",
            align="center",
        ),
        custom_attrs={"data-unread": n["unread"]},
    )
    inbox = card(
        rx.hstack(
            rx.switch(
                checked=A.notify_own_jobs,
                on_change=A.set_notify_own_jobs,
                id="notify-own-jobs",
                aria_label="Notify me when my own jobs finish",
            ),
            rx.el.label(
                "Notify me when my own jobs succeed, fail or are cancelled (here, and by e-mail when the "
                "platform has e-mail set up and your account has an address)",
                html_for="notify-own-jobs",
            ),
            spacing="3",
            align="center",
        ),
        rx.cond(
            A.inbox.length() > 0,
            rx.vstack(
                rx.el.ul(
                    rx.foreach(A.inbox, inbox_row), id="inbox", style={"list-style": "none", "padding": 0}
                ),
                rx.button(
                    "Mark all read", size="1", variant="outline", on_click=A.mark_all_read, id="mark-read"
                ),
                spacing="2",
                align="start",
            ),
            empty_state("No notifications yet.", "inbox-empty"),
        ),
        title="Notifications",
        id="notifications",
    )
    return shell(
        A,
        rx.cond(
            A.ac_loading,
            loading_state("Loading your account…", "account-loading"),
            rx.vstack(
                card(
                    profile,
                    notice(A.profile_notice, "profile-notice"),
                    maybe_error(A.profile_error, "profile-error"),
                    title="Profile",
                ),
                inbox,
                card(
                    password,
                    notice(A.password_notice, "password-notice"),
                    maybe_error(A.password_error, "password-error"),
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
                    maybe_error(A.token_error, "token-error"),
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
