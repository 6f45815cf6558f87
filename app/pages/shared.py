"""Pieces the members, sign-up, account and administration pages share."""

from __future__ import annotations

import reflex as rx

from components import tokens
from components.layout import page_shell
from components.project_nav import error_state


def select(id: str, name: str, options: list[str], default: str = "", **props) -> rx.Component:
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


def notice(text: rx.Var[str], id: str) -> rx.Component:
    return rx.cond(
        text != "",
        rx.callout(text, icon="circle_check", color_scheme="green", role="status", id=id, width="100%"),
    )


def maybe_error(text: rx.Var[str], id: str) -> rx.Component:
    return rx.cond(text != "", error_state(text, id))


def shell(state: type[rx.State], *children: rx.Component, title: str) -> rx.Component:
    return page_shell(
        *children,
        title=title,
        username=state.username,
        avatar_name=state.avatar_name,
        badge_color=state.badge_color,
        on_sign_out=state.sign_out,
    )
