"""ExperimentCard: one training run at a glance: what it trained, on what, how it ended, whose.

Used above the compare page's tables, so the runs being compared are recognisable before their
numbers are read. The key metrics are the task's quality metrics (the right-hand axis of the
job page's chart), so a classification run shows top-1/top-5 and a detection run mAP.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import reflex as rx

from components import tokens
from components.avatar import avatar
from components.charts import chart_for
from components.status_indicator import status_indicator


@dataclasses.dataclass
class KeyMetric:
    label: str = ""
    value: str = ""


@dataclasses.dataclass
class ExperimentCardData:
    """A run as display text (see `experiment_card_data`)."""

    id: str = ""
    name: str = ""
    model: str = ""
    dataset: str = ""
    state: str = ""
    owner: str = ""
    owner_avatar: str = ""
    owner_color: str = ""
    metrics: list[KeyMetric] = dataclasses.field(default_factory=list)


def key_metrics(task: str, final: Mapping[str, float]) -> list[KeyMetric]:
    """The task's quality metrics at the last epoch, in the chart's order ('—' when missing)."""
    series = [s for s in chart_for(task).series if s.axis == "y2"]
    return [KeyMetric(label=s.label, value=f"{final[s.key]:.3f}" if s.key in final else "—") for s in series]


def _data_of(run: Mapping[str, Any]) -> str:
    """A run's data when its dataset's name is not known: the version id, or a zip's images."""
    if "dataset_version_id" not in run:
        return "version ?"
    version = run["dataset_version_id"]
    return "uploaded images" if version is None else f"version {version}"


def experiment_card_data(
    run: Mapping[str, Any], *, dataset: str = "", owner_avatar: str = "", owner_color: str = ""
) -> ExperimentCardData:
    """services.domain.experiments.run_summary (+ its `final` metrics) as a card's text."""
    return ExperimentCardData(
        id=str(run["id"]),
        name=str(run["name"]),
        model=str(run["model"]).removesuffix(".yaml"),
        dataset=dataset or _data_of(run),
        state=str(run["state"]),
        owner=str(run.get("owner") or ""),
        owner_avatar=owner_avatar or str(run.get("owner") or "?")[:2].upper(),
        owner_color=owner_color or tokens.TEXT_MUTED,
        metrics=key_metrics(str(run.get("task") or "detect"), run.get("final") or {}),
    )


def _fact(icon: str, text: rx.Var[str], label: str) -> rx.Component:
    return rx.hstack(
        rx.icon(icon, size=14, aria_hidden="true", color=tokens.TEXT_MUTED),
        rx.text(
            rx.el.span(label + ": ", class_name="sr-only"), text, as_="span", size="2", color=tokens.TEXT
        ),
        spacing="1",
        align="center",
    )


def experiment_card(run: rx.Var[Any]) -> rx.Component:
    """One run's card; `run` is an ExperimentCardData var."""
    return rx.el.article(
        rx.vstack(
            rx.hstack(
                rx.el.h3(
                    rx.link("#", run.id, " ", run.name, href="/jobs/" + run.id, color=tokens.PRIMARY),
                    margin="0",
                    font_size="16px",
                    id="run-card-title-" + run.id,
                ),
                status_indicator(run.state),
                justify="between",
                align="start",
                width="100%",
            ),
            rx.flex(
                _fact("box", run.model, "Model"),
                _fact("database", run.dataset, "Dataset"),
                wrap="wrap",
                spacing="4",
            ),
            rx.el.dl(
                rx.foreach(
                    run.metrics,
                    lambda m: rx.box(
                        rx.el.dt(m.label, font_size="12px", color=tokens.TEXT_MUTED),
                        rx.el.dd(m.value, margin="0", font_size="18px", font_weight="600", color=tokens.TEXT),
                    ),
                ),
                display="flex",
                gap=tokens.SPACE["lg"],
                margin="0",
                class_name="run-metrics",
            ),
            rx.hstack(
                avatar(run.owner_avatar, run.owner_color, username=run.owner, size="24px"),
                rx.text(run.owner, as_="span", size="1", color=tokens.TEXT_MUTED),
                align="center",
                spacing="2",
            ),
            spacing="3",
            align="stretch",
        ),
        aria_labelledby="run-card-title-" + run.id,
        class_name="experiment-card",
        custom_attrs={"data-run-id": run.id},
        background_color=tokens.SURFACE,
        border=f"1px solid {tokens.BORDER}",
        border_radius=tokens.RADIUS["md"],
        padding=tokens.SPACE["md"],
    )


def experiment_grid(runs: rx.Var[list[ExperimentCardData]], *, id: str) -> rx.Component:
    return rx.grid(
        rx.foreach(runs, experiment_card),
        grid_template_columns="repeat(auto-fill, minmax(260px, 1fr))",
        gap=tokens.SPACE["md"],
        width="100%",
        id=id,
    )
