"""/projects/[project_id]/train: a training form generated from the trainer's plugin catalogue."""

from __future__ import annotations

import reflex as rx

from components import tokens
from components.layout import card, field, native_select, page_shell
from components.permission_gate import permission_gate
from services.domain.permissions import Action
from state.train_state import TrainState

S = TrainState
SELECT_STYLE = {
    "padding": "6px 8px",
    "border": f"1px solid {tokens.BORDER}",
    "border_radius": tokens.RADIUS["sm"],
    "background_color": tokens.SURFACE,
    "color": tokens.TEXT,
    "font_size": "14px",
    "min_height": "32px",
}


def _error(name: str | rx.Var, id: rx.Var | str) -> rx.Component:
    message = S.errors[name]
    return rx.cond(
        S.errors.contains(name),
        rx.text(message, color=tokens.DANGER, size="1", id=id, role="alert"),
    )


def _control(p: rx.Var) -> rx.Component:
    common = {
        "id": p["id"],
        "name": p["name"],
        "custom_attrs": {"aria-describedby": p["id"] + "-hint"},
    }
    return rx.match(
        p["widget"],
        (
            "select",
            rx.el.select(
                rx.foreach(S.choices[p["name"]], lambda c: rx.el.option(c, value=c)),
                default_value=p["default"],
                **common,
                **SELECT_STYLE,
            ),
        ),
        (
            "bool",
            rx.el.select(
                rx.el.option("yes", value="true"),
                rx.el.option("no", value="false"),
                default_value=p["default"],
                **common,
                **SELECT_STYLE,
            ),
        ),
        rx.el.input(
            type=rx.cond(p["widget"] == "number", "number", "text"),
            min=p["min"],
            max=p["max"],
            step=p["step"],
            default_value=p["default"],
            placeholder=p["default"],
            on_blur=lambda v: S.check_field(p["name"], v),
            width="100%",
            **common,
            **SELECT_STYLE,
        ),
    )


def _param(p: rx.Var) -> rx.Component:
    return rx.vstack(
        rx.el.label(p["label"], html_for=p["id"], font_weight="500", font_size="14px", color=tokens.TEXT),
        _control(p),
        rx.text(
            rx.cond(p["help"] != "", p["help"] + " · ", ""),
            "default ",
            p["default"],
            " · ",
            p["hint"],
            id=p["id"] + "-hint",
            size="1",
            color=tokens.TEXT_MUTED,
        ),
        _error(p["name"], p["id"] + "-error"),
        spacing="1",
        align="stretch",
        class_name="hp-field",
        custom_attrs={"data-name": p["name"]},
    )


def choose_card() -> rx.Component:
    model_control = rx.cond(
        S.any_model,
        rx.vstack(
            rx.el.input(
                id="model",
                name="model",
                list="model-suggestions",
                value=S.model,
                on_change=S.set_model,
                **SELECT_STYLE,
            ),
            rx.el.datalist(
                rx.foreach(S.models, lambda m: rx.el.option(value=m["value"])), id="model-suggestions"
            ),
            rx.text(
                "Any model name this framework knows; suggestions listed.", size="1", color=tokens.TEXT_MUTED
            ),
            spacing="1",
        ),
        native_select(
            S.models, id="model", name="model", value=S.model, on_change=S.set_model, min_width="200px"
        ),
    )
    return card(
        rx.flex(
            field(
                "Framework",
                native_select(
                    S.frameworks,
                    id="framework",
                    name="framework",
                    value=S.framework,
                    on_change=S.set_framework,
                ),
                html_for="framework",
            ),
            field(
                "Task",
                native_select(S.tasks, id="task", name="task", value=S.task, on_change=S.set_task),
                html_for="task",
            ),
            rx.vstack(field("Model", model_control, html_for="model"), _error("model", "model-error")),
            wrap="wrap",
            spacing="5",
        ),
        title="What to train",
    )


def _number(label: str, name: str, placeholder: str, hint: str) -> rx.Component:
    key = f"resources.{name}"
    box = f"resources-{name.replace('_', '-')}"
    return rx.vstack(
        field(
            label,
            rx.input(
                id=box,
                name=f"resources_{name}",
                placeholder=placeholder,
                input_mode="decimal",
                width="120px",
                custom_attrs={"aria-describedby": box + "-hint"},
            ),
            html_for=box,
        ),
        rx.text(hint, size="1", color=tokens.TEXT_MUTED, id=box + "-hint"),
        _error(key, box + "-error"),
        spacing="1",
    )


def resources_card() -> rx.Component:
    """What the job asks the fleet for, beside what the fleet has free now."""
    return card(
        rx.callout(S.fleet_free, icon="server", color_scheme="gray", id="fleet-free", role="status"),
        rx.flex(
            _number("GPUs", "gpus", "0", "Whole GPUs on one machine."),
            _number("CPUs", "cpus", "1", "Cores (CPU slots)."),
            _number("Memory (GB)", "memory_gb", "any", "Leave empty for no ask."),
            rx.vstack(
                field(
                    "GPU type",
                    rx.el.select(
                        rx.el.option("any", value=""),
                        rx.foreach(S.accelerators, lambda a: rx.el.option(a, value=a)),
                        id="resources-accelerator",
                        name="resources_accelerator",
                        **SELECT_STYLE,
                    ),
                    html_for="resources-accelerator",
                ),
                _error("resources.accelerator", "resources-accelerator-error"),
                spacing="1",
            ),
            wrap="wrap",
            spacing="5",
        ),
        title="Resources",
    )


def form_card() -> rx.Component:
    return rx.form(
        rx.vstack(
            card(
                rx.flex(
                    rx.vstack(
                        field(
                            "Dataset version",
                            rx.cond(
                                S.version_options.length() > 0,
                                native_select(
                                    S.version_options,
                                    id="dataset-version",
                                    name="dataset_version_id",
                                    min_width="260px",
                                ),
                                rx.text(
                                    "No dataset for this task yet: upload one on the datasets page.",
                                    id="no-dataset",
                                    color=tokens.TEXT_MUTED,
                                ),
                            ),
                            html_for="dataset-version",
                        ),
                        _error("dataset_version_id", "dataset-error"),
                    ),
                    field(
                        "Device",
                        rx.el.select(
                            rx.el.option("auto (GPU when there is one)", value="auto"),
                            rx.el.option("CPU", value="cpu"),
                            rx.el.option("CUDA GPU", value="cuda"),
                            id="device",
                            name="device",
                            **SELECT_STYLE,
                        ),
                        html_for="device",
                    ),
                    field(
                        "Run name (optional)",
                        rx.input(id="job-name", name="name", max_length=120, width="240px"),
                        html_for="job-name",
                    ),
                    rx.vstack(
                        field(
                            "Predictions stored (images per split)",
                            rx.input(
                                id="predictions-max-images",
                                name="predictions_max_images",
                                type="number",
                                min=0,
                                max=10_000,
                                placeholder="500",
                                width="120px",
                            ),
                            html_for="predictions-max-images",
                        ),
                        _error("predictions_max_images", "predictions-error"),
                    ),
                    wrap="wrap",
                    spacing="5",
                ),
                title="Data and device",
            ),
            resources_card(),
            card(
                rx.text(
                    "Every setting the trainer accepts for ",
                    rx.code(S.framework),
                    " / ",
                    rx.code(S.task),
                    ", with its default and range. Leave a value as it is to use the default.",
                    color=tokens.TEXT_MUTED,
                    size="2",
                ),
                rx.grid(
                    rx.foreach(S.fields, _param),
                    columns=rx.breakpoints(initial="1", sm="2", md="3", lg="4"),
                    spacing="4",
                    width="100%",
                    id="hyperparameters",
                    key=S.form_key,
                ),
                title="Hyperparameters",
            ),
            rx.cond(
                S.form_error != "",
                rx.callout(
                    S.form_error, icon="triangle_alert", color_scheme="red", role="alert", id="train-error"
                ),
            ),
            rx.button(
                rx.cond(S.submitting, rx.spinner(size="2"), rx.icon("play", size=16, aria_hidden="true")),
                "Start training",
                type="submit",
                id="start-training",
                disabled=S.submitting | (S.version_options.length() == 0),
                background_color=tokens.PRIMARY,
                color=tokens.PRIMARY_TEXT,
                width="fit-content",
            ),
            spacing="5",
            align="stretch",
        ),
        on_submit=S.submit,
        reset_on_submit=False,
        aria_label="Start a training job",
        id="train-form",
    )


def train_page() -> rx.Component:
    body = rx.cond(
        S.load_error != "",
        rx.callout(
            S.load_error, icon="triangle_alert", color_scheme="red", role="alert", id="train-load-error"
        ),
        rx.cond(
            S.fields.length() > 0,
            permission_gate(
                rx.vstack(choose_card(), form_card(), spacing="5", align="stretch", width="100%"),
                allowed=S.can_train,
                action=Action.job_create,
                what="Starting training",
                id="train",
            ),
            rx.hstack(rx.spinner(), rx.text("Asking the trainer what it can train…"), align="center"),
        ),
    )
    return page_shell(
        rx.link("← Project", href="/", color=tokens.PRIMARY, id="back-to-project"),
        body,
        title=rx.cond(S.project_name != "", "New training job · " + S.project_name, "New training job"),
        username=S.username,
        avatar_name=S.avatar_name,
        badge_color=S.badge_color,
        on_sign_out=S.sign_out,
    )
