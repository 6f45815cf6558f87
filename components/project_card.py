"""ProjectCard: one project on the projects home, with the user's role, counts and members' faces.

A grid of these is the home page: it answers "where was I, and what is running" at a glance
without opening each project. The card's name is a button that picks the project for the panels
under the grid (keyboard: Tab to it, Enter), and its links open the project's own pages.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import reflex as rx

from components import tokens
from components.avatar import avatar


@dataclasses.dataclass
class Face:
    """A member as the one avatar component draws them."""

    username: str = ""
    avatar_name: str = ""
    badge_color: str = ""
    role: str = ""


@dataclasses.dataclass
class ProjectCardData:
    """Everything a card shows, as display text (state.formatting.project_card builds it)."""

    id: str = ""
    name: str = ""
    role: str = ""
    datasets: str = ""  # "3 datasets"
    running: str = ""  # "1 job running" / "No jobs running"
    running_count: int = 0
    jobs: str = ""  # "12 jobs in all"
    members: str = ""  # "4 members"
    more_members: str = ""  # "+3" when some faces are not shown
    faces: list[Face] = dataclasses.field(default_factory=list)
    last_activity: str = ""


def _stat(icon: str, text: rx.Var[str], cls: str) -> rx.Component:
    return rx.hstack(
        rx.icon(icon, size=14, aria_hidden="true", color=tokens.TEXT_MUTED),
        rx.text(text, as_="span", size="2", color=tokens.TEXT),
        spacing="1",
        align="center",
        class_name=cls,
    )


def _link(text: str, href: rx.Var[str], name: rx.Var[str]) -> rx.Component:
    return rx.link(
        text,
        href=href,
        color=tokens.PRIMARY,
        size="2",
        weight="medium",
        aria_label=text + " of " + name,
    )


def project_card(data: rx.Var[Any], *, selected: rx.Var[bool], on_select: Any) -> rx.Component:
    """One card. `data` is a ProjectCardData var; `on_select` the event that picks the project."""
    base = "/projects/" + data.id
    faces = rx.hstack(
        rx.foreach(
            data.faces,
            lambda f: rx.box(
                rx.tooltip(
                    avatar(
                        f.avatar_name, f.badge_color, username=f.username + " (" + f.role + ")", size="28px"
                    ),
                    content=f.username + " · " + f.role,
                ),
                margin_left="-6px",
                border=f"2px solid {tokens.SURFACE}",
                border_radius=tokens.RADIUS["pill"],
                display="inline-flex",
            ),
        ),
        rx.cond(
            data.more_members != "",
            rx.text(data.more_members, as_="span", size="1", color=tokens.TEXT_MUTED, padding_left="4px"),
        ),
        spacing="0",
        align="center",
        padding_left="6px",
        class_name="project-faces",
        aria_label=data.members,
        role="group",
    )
    return rx.el.article(
        rx.vstack(
            rx.hstack(
                rx.el.h3(
                    rx.el.button(
                        data.name,
                        on_click=on_select,
                        aria_pressed=rx.cond(selected, "true", "false"),
                        title="Show this project's datasets and jobs below",
                        class_name="project-card-select",
                        background="none",
                        border="none",
                        padding="0",
                        cursor="pointer",
                        color=tokens.TEXT,
                        font_size="17px",
                        font_weight="600",
                        text_align="left",
                    ),
                    margin="0",
                    id="project-card-title-" + data.id,
                ),
                rx.badge(
                    "Your role: " + data.role,
                    color_scheme="gray",
                    variant="soft",
                    size="1",
                    class_name="project-role",
                ),
                justify="between",
                align="start",
                width="100%",
                spacing="2",
            ),
            rx.flex(
                _stat("database", data.datasets, "project-datasets"),
                rx.hstack(
                    rx.cond(
                        data.running_count > 0,
                        rx.icon(
                            "loader_circle", size=14, aria_hidden="true", color=tokens.STATUS["running"]["fg"]
                        ),
                        rx.icon("circle_pause", size=14, aria_hidden="true", color=tokens.TEXT_MUTED),
                    ),
                    rx.text(data.running, as_="span", size="2", color=tokens.TEXT),
                    spacing="1",
                    align="center",
                    class_name="project-running",
                ),
                _stat("list", data.jobs, "project-jobs"),
                wrap="wrap",
                spacing="4",
            ),
            rx.hstack(
                faces,
                rx.text(data.members, as_="span", size="1", color=tokens.TEXT_MUTED),
                align="center",
                spacing="2",
            ),
            rx.text(
                "Last activity ",
                rx.el.time(data.last_activity),
                size="1",
                color=tokens.TEXT_MUTED,
                class_name="project-activity",
            ),
            rx.hstack(
                _link("Datasets", base + "/datasets", data.name),
                _link("Jobs", base + "/jobs", data.name),
                _link("Members", base + "/members", data.name),
                spacing="4",
                padding_top=tokens.SPACE["xs"],
                border_top=f"1px solid {tokens.GRID}",
                width="100%",
            ),
            spacing="3",
            align="stretch",
        ),
        aria_labelledby="project-card-title-" + data.id,
        class_name="project-card",
        custom_attrs={"data-project-id": data.id, "data-selected": rx.cond(selected, "true", "false")},
        background_color=tokens.SURFACE,
        border=rx.cond(selected, f"2px solid {tokens.PRIMARY}", f"1px solid {tokens.BORDER}"),
        border_radius=tokens.RADIUS["md"],
        padding=tokens.SPACE["md"],
        box_shadow="0 1px 2px rgba(15, 23, 42, 0.06)",
    )


def project_grid(
    cards: rx.Var[list[ProjectCardData]], *, selected_id: rx.Var[str], on_select: Any
) -> rx.Component:
    """The projects home's grid: as many columns as fit at 300 px, one on a phone."""
    return rx.grid(
        rx.foreach(
            cards,
            lambda c: project_card(c, selected=c.id == selected_id, on_select=on_select(c.id)),
        ),
        grid_template_columns="repeat(auto-fill, minmax(300px, 1fr))",
        gap=tokens.SPACE["md"],
        width="100%",
        id="project-cards",
    )
