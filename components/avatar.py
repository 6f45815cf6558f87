"""The one avatar component: a user's `avatar_name` initials on their `badge_color`."""

from __future__ import annotations

import reflex as rx

from components import tokens


def avatar(
    avatar_name: rx.Var[str] | str,
    badge_color: rx.Var[str] | str,
    *,
    username: rx.Var[str] | str = "",
    size: str = "32px",
) -> rx.Component:
    """Initials on a coloured disc. Badge colours are dark enough for white text (AA)."""
    return rx.box(
        rx.text(avatar_name, as_="span", size="2", weight="bold"),
        display="inline-flex",
        align_items="center",
        justify_content="center",
        width=size,
        height=size,
        min_width=size,
        border_radius=tokens.RADIUS["pill"],
        background_color=badge_color,
        color=tokens.PRIMARY_TEXT,
        role="img",
        aria_label=username,
        class_name="avatar",
    )
