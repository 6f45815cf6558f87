"""Project sub-navigation (Overview · Datasets · Members) and the small shared UI pieces of the
project pages: tables, empty/loading/error states."""

from __future__ import annotations

from typing import Any

import reflex as rx

from components import tokens


def project_nav(project_id: rx.Var[int], current: str, project_name: rx.Var[str] | str = "") -> rx.Component:
    def link(text: str, suffix: str) -> rx.Component:
        active = text == current
        return rx.link(
            text,
            href=f"/projects/{project_id}{suffix}" if suffix else "/",
            color=tokens.PRIMARY if not active else tokens.TEXT,
            weight="bold" if active else "medium",
            underline="always" if active else "hover",
            aria_current="page" if active else None,
        )

    return rx.el.nav(
        rx.hstack(
            rx.text(project_name, weight="medium", color=tokens.TEXT_MUTED, as_="span"),
            link("Projects", ""),
            link("Datasets", "/datasets"),
            link("Members", "/members"),
            link("Notifications", "/notifications"),
            spacing="4",
            align="center",
        ),
        aria_label="Project",
    )


def header_cell(text: str) -> rx.Component:
    # A column of buttons has no visible heading; screen readers still get one (axe empty-table-header).
    label = text or rx.el.span("Actions", class_name="sr-only")
    return rx.table.column_header_cell(label, color=tokens.TEXT, scope="col")


def data_table(
    headers: list[str], body: rx.Component, *, id: str, caption: str, **props: Any
) -> rx.Component:
    return rx.table.root(
        rx.el.caption(caption, class_name="sr-only"),
        rx.table.header(rx.table.row(*[header_cell(h) for h in headers])),
        rx.table.body(body),
        id=id,
        width="100%",
        variant="surface",
        **props,
    )


def empty_state(text: str | rx.Var[str], id: str, icon: str = "inbox") -> rx.Component:
    return rx.hstack(
        rx.icon(icon, size=18, color=tokens.TEXT_MUTED, aria_hidden="true"),
        rx.text(text, color=tokens.TEXT_MUTED),
        id=id,
        align="center",
        spacing="2",
    )


def loading_state(text: str, id: str) -> rx.Component:
    return rx.hstack(
        rx.spinner(size="2"),
        rx.text(text, color=tokens.TEXT_MUTED),
        id=id,
        role="status",
        align="center",
        spacing="2",
    )


def error_state(message: rx.Var[str] | str, id: str) -> rx.Component:
    return rx.callout(message, icon="triangle_alert", color_scheme="red", role="alert", id=id, width="100%")


def primary_button(*children: Any, **props: Any) -> rx.Component:
    return rx.button(*children, background_color=tokens.PRIMARY, color=tokens.PRIMARY_TEXT, **props)
