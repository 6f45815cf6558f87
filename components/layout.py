"""The page shell: a top bar with navigation and the signed-in user, then the page content."""

from __future__ import annotations

from typing import Any

import reflex as rx

from components import tokens
from components.avatar import avatar
from components.connection import connection_banner
from state.auth_state import AuthState  # the parent of every page's state: the bell's count


def nav_link(text: str, href: str) -> rx.Component:
    return rx.link(text, href=href, color=tokens.PRIMARY_TEXT, weight="medium", underline="hover")


def notification_bell() -> rx.Component:
    """The header's bell: how many of the user's in-app notifications are unread; the list is on
    the account page. The count is refreshed whenever a page resolves the signed-in user."""
    unread = AuthState.unread_notifications
    return rx.link(
        rx.hstack(
            rx.icon("bell", size=18, aria_hidden="true"),
            rx.cond(unread > 0, rx.text(unread, as_="span", size="1", weight="bold", id="bell-count")),
            spacing="1",
            align="center",
        ),
        href="/account#notifications",
        color=tokens.PRIMARY_TEXT,
        underline="none",
        id="notification-bell",
        aria_label=rx.cond(unread > 0, unread.to_string() + " unread notifications", "Notifications"),
    )


def page_shell(
    *children: rx.Component,
    title: str | rx.Var[str],
    username: rx.Var[str],
    avatar_name: rx.Var[str],
    badge_color: rx.Var[str],
    on_sign_out: Any,
) -> rx.Component:
    header = rx.el.header(
        rx.hstack(
            rx.hstack(
                rx.link(
                    rx.hstack(
                        rx.icon("scan_eye", size=22, aria_hidden="true"),
                        rx.text("Vision Training", as_="span", weight="bold", size="4"),
                        align="center",
                        spacing="2",
                    ),
                    href="/",
                    color=tokens.PRIMARY_TEXT,
                    underline="none",
                    aria_label="Vision Training home",
                ),
                rx.el.nav(
                    rx.hstack(
                        nav_link("Projects", "/"),
                        nav_link("Analytics", "/analytics"),
                        nav_link("Account", "/account"),
                        nav_link("Admin", "/admin"),
                        spacing="4",
                    ),
                    aria_label="Main",
                ),
                spacing="6",
                align="center",
            ),
            rx.hstack(
                notification_bell(),
                avatar(avatar_name, badge_color, username=username),
                rx.text(username, as_="span", color=tokens.PRIMARY_TEXT, id="current-user", size="2"),
                rx.button(
                    rx.icon("log_out", size=16, aria_hidden="true"),
                    "Sign out",
                    on_click=on_sign_out,
                    variant="outline",
                    size="1",
                    color=tokens.PRIMARY_TEXT,
                    border=f"1px solid {tokens.PRIMARY_TEXT}",
                    box_shadow="none",
                    id="sign-out",
                ),
                spacing="3",
                align="center",
            ),
            justify="between",
            align="center",
            width="100%",
            max_width=tokens.CONTENT_WIDTH,
            margin_x="auto",
        ),
        background_color=tokens.TEXT,
        padding_x=tokens.SPACE["lg"],
        padding_y=tokens.SPACE["sm"],
    )
    main = rx.el.main(
        rx.vstack(
            rx.heading(title, as_="h1", size="6", color=tokens.TEXT),
            *children,
            spacing="5",
            width="100%",
            max_width=tokens.CONTENT_WIDTH,
            margin_x="auto",
            align="stretch",
        ),
        padding=tokens.SPACE["lg"],
    )
    return rx.box(
        connection_banner(),
        header,
        main,
        background_color=tokens.BACKGROUND,
        min_height="100vh",
        color=tokens.TEXT,
    )


def card(*children: rx.Component, title: str = "", **props: Any) -> rx.Component:
    """A bordered surface with an optional h2 title."""
    parts = [rx.heading(title, as_="h2", size="4", color=tokens.TEXT)] if title else []
    return rx.box(
        rx.vstack(*parts, *children, spacing="3", align="stretch", width="100%"),
        background_color=tokens.SURFACE,
        border=f"1px solid {tokens.BORDER}",
        border_radius=tokens.RADIUS["md"],
        padding=tokens.SPACE["md"],
        width="100%",
        **props,
    )


def field(label: str, control: rx.Component, *, html_for: str) -> rx.Component:
    """A visible label tied to its control with for/id."""
    return rx.vstack(
        rx.el.label(label, html_for=html_for, font_weight="500", font_size="14px", color=tokens.TEXT),
        control,
        spacing="1",
        align="stretch",
    )


def labelled_input(
    id_: str,
    label: str,
    type_: str,
    autocomplete: str,
    *,
    name: str = "",
    required: bool = True,
    **props: Any,
) -> rx.Component:
    """An input with its visible label; `name` (the form key) defaults to the id."""
    return field(
        label,
        rx.input(
            id=id_, name=name or id_, type=type_, auto_complete=autocomplete, required=required, **props
        ),
        html_for=id_,
    )


def auth_input(id_: str, label: str, type_: str, autocomplete: str, required: bool = True) -> rx.Component:
    """The full-width, large input of the signed-out pages (sign in, sign up)."""
    return labelled_input(id_, label, type_, autocomplete, required=required, size="3", width="100%")


def native_select(options: rx.Var[list[dict[str, str]]], *, id: str, name: str, **props: Any) -> rx.Component:
    """A native <select> (keyboard and screen-reader friendly) over [{"value", "label"}]."""
    return rx.el.select(
        rx.foreach(options, lambda o: rx.el.option(o["label"], value=o["value"])),
        id=id,
        name=name,
        padding="6px 8px",
        border=f"1px solid {tokens.BORDER}",
        border_radius=tokens.RADIUS["sm"],
        background_color=tokens.SURFACE,
        color=tokens.TEXT,
        font_size="14px",
        min_height="32px",
        **props,
    )


def auth_shell(heading: str, *children: rx.Component, max_width: str = "400px") -> rx.Component:
    """The centred card of the signed-out pages (sign in, sign up), with the product's mark."""
    return rx.center(
        connection_banner(),
        rx.el.main(
            rx.vstack(
                rx.hstack(
                    rx.icon("scan_eye", size=28, color=tokens.PRIMARY, aria_hidden="true"),
                    rx.heading(heading, as_="h1", size="6", color=tokens.TEXT),
                    align="center",
                    spacing="2",
                ),
                *children,
                spacing="4",
                align="stretch",
                width="100%",
            ),
            width="100%",
            max_width=max_width,
            background_color=tokens.SURFACE,
            border=f"1px solid {tokens.BORDER}",
            border_radius=tokens.RADIUS["md"],
            padding=tokens.SPACE["xl"],
        ),
        min_height="100vh",
        background_color=tokens.BACKGROUND,
        padding=tokens.SPACE["md"],
    )
