"""PermissionGate: shows a control only to roles the server would allow; otherwise says who may.

It never decides anything: the state passes whether the user's role allows the action (from
services.domain.permissions via state.page_helpers.role_allows) and the server checks again anyway.
"""

from __future__ import annotations

import reflex as rx

from components import tokens
from services.domain.permissions import Action, needed_role


def permission_gate(
    control: rx.Component,
    *,
    allowed: rx.Var[bool] | bool,
    action: Action,
    what: str,
    id: str = "",
    own: bool = False,
) -> rx.Component:
    """`control` when allowed; else a focusable note with a tooltip naming the role needed.

    `own`: the target is the user's own (e.g. a job they launched), so the note names the lower
    role of services.domain.permissions.OWN_MINIMUM_ROLE where the action has one.
    """
    role = needed_role(action, own=own).value
    message = f"{what} needs the {role} role or higher in this project."
    locked = rx.tooltip(
        rx.el.span(
            rx.icon("lock", size=14, aria_hidden="true"),
            rx.text(f"{what}: {role} role needed", as_="span", size="2"),
            tab_index=0,
            aria_label=message,
            display="inline-flex",
            align_items="center",
            gap="6px",
            color=tokens.TEXT_MUTED,
            class_name="permission-locked",
            custom_attrs={"data-needs-role": role},
            id=f"{id}-locked" if id else None,
        ),
        content=message,
    )
    return rx.cond(allowed, control, locked)


PermissionGate = permission_gate
