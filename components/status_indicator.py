"""StatusIndicator: a job state shown as colour + icon + text (never colour alone)."""

from __future__ import annotations

import reflex as rx

from components import tokens


def _pill(state: str, spec: dict[str, str], *, live: bool) -> rx.Component:
    return rx.hstack(
        rx.icon(spec["icon"], size=14, aria_hidden="true"),
        rx.text(spec["label"], as_="span", size="2", weight="medium"),
        spacing="1",
        align="center",
        display="inline-flex",
        padding_x=tokens.SPACE["sm"],
        padding_y="2px",
        border_radius=tokens.RADIUS["pill"],
        color=spec["fg"],
        background_color=spec["bg"],
        border=f"1px solid {spec['fg']}33",
        white_space="nowrap",
        custom_attrs={"data-state": state, **({"role": "status"} if live else {})},
        class_name="status-indicator",
    )


def status_indicator(state: rx.Var[str] | str, *, live: bool = False) -> rx.Component:
    """Render a job state. `live=True` marks it as a polite live region (for the job page)."""
    if isinstance(state, str):
        return _pill(state, tokens.STATUS.get(state, tokens.UNKNOWN_STATUS), live=live)
    cases = [(name, _pill(name, spec, live=live)) for name, spec in tokens.STATUS.items()]
    return rx.match(state, *cases, _pill("unknown", tokens.UNKNOWN_STATUS, live=live))


StatusIndicator = status_indicator
