"""UserAvatarCard: a person as the UI shows them everywhere: avatar, name, role badge.

Built on the one avatar component (components/avatar.py), so a user's `avatar_name` initials on
their `badge_color` look the same in the top bar, the member list and a project card.
"""

from __future__ import annotations

import reflex as rx

from components import tokens
from components.avatar import avatar


def role_badge(role: rx.Var[str] | str) -> rx.Component:
    """The role's name as a soft badge (one colour for every role: the word carries the meaning)."""
    return rx.badge(role, variant="soft", color_scheme="indigo", class_name="member-role")


def user_avatar_card(
    *,
    username: rx.Var[str] | str,
    avatar_name: rx.Var[str] | str,
    badge_color: rx.Var[str] | str,
    role: rx.Var[str] | str = "",
    you: rx.Var[bool] | bool = False,
    size: str = "32px",
) -> rx.Component:
    """Avatar, name (and "you" for the signed-in user), and the role badge when `role` is given."""
    return rx.hstack(
        avatar(avatar_name, badge_color, username=username, size=size),
        rx.text(username, as_="span", weight="medium", color=tokens.TEXT),
        rx.cond(you, rx.badge("you", color_scheme="gray", variant="soft")),
        role_badge(role) if not isinstance(role, str) or role else rx.fragment(),
        align="center",
        spacing="2",
        class_name="user-avatar-card",
    )
