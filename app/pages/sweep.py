"""The sweep page (`/sweeps/[sweep_id]`) and a project's sweeps list: layout only."""

from __future__ import annotations

import reflex as rx

from components import tokens
from components.basic_plot import basic_plot
from components.layout import card, page_shell
from components.permission_gate import permission_gate
from components.project_nav import (
    data_table,
    empty_state,
    error_state,
    loading_state,
    primary_button,
    project_nav,
)
from components.status_indicator import status_indicator
from services.domain.permissions import Action
from state.sweep_state import SweepPageState, SweepsListState

S = SweepPageState
L = SweepsListState
PLOT_CONFIG = {"displaylogo": False, "responsive": True}


def _trial_row(t: rx.Var) -> rx.Component:
    return rx.table.row(
        rx.table.row_header_cell(
            rx.hstack(
                rx.text("#", t["number"]), rx.cond(t["best"] == "yes", rx.badge("best", color_scheme="green"))
            )
        ),
        rx.table.cell(t["state"]),
        rx.table.cell(t["params"], font_family=tokens.MONO_FAMILY, font_size="13px"),
        rx.table.cell(t["value"]),
        rx.table.cell(t["epochs"]),
        rx.table.cell(
            rx.cond(t["href"] != "", rx.link("job ", t["job"], href=t["href"], color=tokens.PRIMARY), "—")
        ),
        custom_attrs={"data-trial": t["number"]},
    )


def _actions() -> rx.Component:
    return rx.hstack(
        rx.cond(
            S.has_best,
            permission_gate(
                primary_button(
                    rx.icon("play", size=16, aria_hidden="true"),
                    "Train best as a new job",
                    on_click=S.train_best,
                    disabled=S.working,
                    id="train-best",
                ),
                allowed=S.can_train,
                action=Action.job_create,
                what="Training the best trial",
                id="train-best",
            ),
        ),
        rx.cond(
            S.running,
            permission_gate(
                rx.button(
                    rx.icon("square", size=16, aria_hidden="true"),
                    "Cancel sweep",
                    on_click=S.cancel,
                    disabled=S.working,
                    color_scheme="red",
                    variant="outline",
                    id="cancel-sweep",
                ),
                allowed=S.can_cancel,
                action=Action.job_cancel,
                what="Cancelling the sweep",
                id="cancel-sweep",
                own=True,
            ),
        ),
        spacing="3",
        wrap="wrap",
    )


def _summary() -> rx.Component:
    return card(
        rx.hstack(
            status_indicator(S.sweep_state, live=True),
            rx.text(S.progress, id="sweep-progress", color=tokens.TEXT),
            spacing="3",
            align="center",
            wrap="wrap",
        ),
        rx.text(S.settings_text, color=tokens.TEXT_MUTED, size="2", id="sweep-settings"),
        rx.cond(S.message != "", rx.callout(S.message, icon="info", color_scheme="gray", id="sweep-message")),
        rx.hstack(
            rx.vstack(
                rx.text("Best ", S.objective, weight="medium"),
                rx.text(S.best_value, size="6", weight="bold", id="best-value"),
                rx.cond(
                    S.has_best,
                    rx.link(
                        "job ", S.best_job_id, href="/jobs/" + S.best_job_id.to(str), color=tokens.PRIMARY
                    ),
                ),
                spacing="1",
            ),
            rx.vstack(
                rx.text("Best trial's hyperparameters", weight="medium"),
                rx.cond(
                    S.best_params.length() > 0,
                    rx.flex(
                        rx.foreach(
                            S.best_params,
                            lambda p: rx.code(
                                p["name"], "=", p["value"], custom_attrs={"data-param": p["name"]}
                            ),
                        ),
                        wrap="wrap",
                        gap="6px",
                        id="best-params",
                    ),
                    rx.text("No finished trial yet.", color=tokens.TEXT_MUTED),
                ),
                spacing="1",
            ),
            spacing="6",
            wrap="wrap",
        ),
        _actions(),
        rx.cond(
            S.action_message != "",
            rx.callout(S.action_message, icon="info", role="status", id="sweep-action-message"),
        ),
        title="Sweep",
    )


def _charts() -> rx.Component:
    return rx.vstack(
        card(
            basic_plot(data=S.history, config=PLOT_CONFIG, width="100%", id="history-chart"),
            title="Optimisation history",
        ),
        card(
            basic_plot(data=S.parallel, config=PLOT_CONFIG, width="100%", id="parallel-chart"),
            title="Trials across their hyperparameters (colour: objective)",
        ),
        card(
            basic_plot(data=S.importance, config=PLOT_CONFIG, width="100%", id="importance-chart"),
            rx.cond(
                S.importance_note != "",
                rx.text(S.importance_note, size="2", color=tokens.TEXT_MUTED, id="importance-note"),
            ),
            title="Parameter importances",
        ),
        spacing="5",
        align="stretch",
        width="100%",
    )


def _trials() -> rx.Component:
    return card(
        rx.cond(
            S.trials.length() > 0,
            data_table(
                ["Trial", "State", "Parameters", "Value", "Epochs reported", "Job"],
                rx.foreach(S.trials, _trial_row),
                id="trials-table",
                caption="Trials of this sweep",
            ),
            empty_state("No trial has started yet.", id="no-trials"),
        ),
        rx.flex(
            rx.foreach(
                S.space,
                lambda e: rx.text(rx.code(e["name"]), " ", e["text"], size="2", color=tokens.TEXT_MUTED),
            ),
            wrap="wrap",
            gap="12px",
            id="search-space",
        ),
        title="Trials",
    )


def sweep_page() -> rx.Component:
    body = rx.cond(
        S.not_found != "",
        error_state(S.not_found, id="sweep-not-found"),
        rx.vstack(
            rx.cond(
                S.loaded,
                rx.vstack(
                    rx.cond(
                        S.live_message != "",
                        rx.callout(S.live_message, icon="wifi_off", color_scheme="amber", role="status"),
                    ),
                    rx.cond(
                        S.busy_message != "",
                        rx.callout(S.busy_message, icon="hourglass", color_scheme="amber", role="status"),
                    ),
                    _summary(),
                    spacing="5",
                    align="stretch",
                    width="100%",
                ),
                loading_state("Loading the sweep…", id="sweep-loading"),
            ),
            # Mounted while the sweep loads, so the browser fetches and parses Plotly meanwhile.
            _charts(),
            rx.cond(S.loaded, _trials()),
            spacing="5",
            align="stretch",
            width="100%",
        ),
    )
    return page_shell(
        rx.link(
            "← Sweeps",
            href="/projects/" + S.project_id.to(str) + "/sweeps",
            color=tokens.PRIMARY,
            id="back-to-sweeps",
        ),
        body,
        title=rx.cond(S.name != "", "Sweep · " + S.name, "Sweep"),
        username=S.username,
        avatar_name=S.avatar_name,
        badge_color=S.badge_color,
        on_sign_out=S.sign_out,
    )


def _sweep_row(s: rx.Var) -> rx.Component:
    return rx.table.row(
        rx.table.cell(rx.link("#", s["id"], href=s["href"], color=tokens.PRIMARY)),
        rx.table.row_header_cell(rx.link(s["name"], href=s["href"], color=tokens.PRIMARY)),
        rx.table.cell(status_indicator(s["state"])),
        rx.table.cell(s["progress"]),
        rx.table.cell(s["objective"]),
        rx.table.cell(s["best"]),
        rx.table.cell(s["created"]),
    )


def sweeps_page() -> rx.Component:
    body = rx.cond(
        L.sl_error != "",
        error_state(L.sl_error, id="sweeps-error"),
        rx.cond(
            L.sl_loaded,
            card(
                rx.cond(
                    L.sl_rows.length() > 0,
                    data_table(
                        ["#", "Name", "State", "Progress", "Objective", "Best", "Started"],
                        rx.foreach(L.sl_rows, _sweep_row),
                        id="sweeps-table",
                        caption="Hyperparameter sweeps of this project",
                    ),
                    empty_state(
                        "No sweep yet: start one from the training form in Sweep mode.", id="no-sweeps"
                    ),
                ),
                rx.link(
                    "New sweep",
                    href="/projects/" + L.sl_project_id.to(str) + "/train?mode=sweep",
                    color=tokens.PRIMARY,
                    id="new-sweep",
                ),
                title="Sweeps",
            ),
            loading_state("Loading sweeps…", id="sweeps-loading"),
        ),
    )
    return page_shell(
        project_nav(L.sl_project_id, "Sweeps"),
        body,
        title="Sweeps",
        username=L.username,
        avatar_name=L.avatar_name,
        badge_color=L.badge_color,
        on_sign_out=L.sign_out,
    )
