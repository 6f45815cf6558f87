"""/projects/[project_id]/registry: registered models (MLflow Model Registry), versions, model
card, aliases, downloads, register a job's model, upload weights, "Fine-tune from this"."""

from __future__ import annotations

import reflex as rx

from components import tokens
from components.a11y import labelled_upload
from components.layout import card, field, native_select, page_shell
from components.permission_gate import permission_gate
from services.domain.permissions import Action
from state.registry_state import UPLOAD_ID, RegistryState

S = RegistryState


def models_table() -> rx.Component:
    def row(m: rx.Var) -> rx.Component:
        return rx.table.row(
            rx.table.row_header_cell(
                rx.button(
                    m["name"],
                    on_click=S.choose(m["name"], ""),
                    variant=rx.cond(S.chosen == m["name"], "solid", "ghost"),
                    size="1",
                    id="model-" + m["name"],
                )
            ),
            rx.table.cell(m["latest"]),
            rx.table.cell(m["count"]),
            rx.table.cell(m["aliases"]),
            custom_attrs={"data-model": m["name"]},
        )

    return card(
        rx.cond(
            S.models.length() > 0,
            rx.table.root(
                rx.table.header(
                    rx.table.row(
                        *[
                            rx.table.column_header_cell(h, scope="col")
                            for h in ("Model", "Latest", "Versions", "Aliases")
                        ]
                    )
                ),
                rx.table.body(rx.foreach(S.models, row)),
                id="registry-models",
                variant="surface",
                size="1",
            ),
            rx.text(
                "No registered models yet: register a succeeded job's model, or upload weights.",
                color=tokens.TEXT_MUTED,
                id="no-models",
            ),
        ),
        title="Registered models",
    )


def versions_table() -> rx.Component:
    def row(v: rx.Var) -> rx.Component:
        return rx.table.row(
            rx.table.row_header_cell(
                rx.button(
                    "v",
                    v["version"],
                    on_click=S.choose(S.chosen, v["version"]),
                    variant=rx.cond(S.chosen_version == v["version"], "solid", "ghost"),
                    size="1",
                    id="version-" + v["version"],
                )
            ),
            rx.table.cell(
                rx.cond(v["aliases"] != "", rx.badge(v["aliases"], color_scheme="green"), rx.text("—"))
            ),
            rx.table.cell(
                rx.cond(
                    v["job_href"] != "",
                    rx.link(v["source"], href=v["job_href"], color=tokens.PRIMARY),
                    rx.text(v["source"]),
                )
            ),
            rx.table.cell(v["metrics"]),
            rx.table.cell(v["registered_by"]),
            rx.table.cell(v["created"]),
            custom_attrs={"data-version": v["version"]},
        )

    return card(
        rx.heading("Versions of ", S.chosen, as_="h2", size="4", color=tokens.TEXT),
        rx.table.root(
            rx.table.header(
                rx.table.row(
                    *[
                        rx.table.column_header_cell(h, scope="col")
                        for h in ("Version", "Aliases", "Source", "Validation", "Registered by", "When")
                    ]
                )
            ),
            rx.table.body(rx.foreach(S.versions, row)),
            id="registry-versions",
            variant="surface",
            size="1",
        ),
    )


def _fact(label: str, key: str) -> rx.Component:
    return rx.table.row(rx.table.row_header_cell(label), rx.table.cell(S.card[key], id="card-" + key))


def model_card() -> rx.Component:
    return card(
        rx.heading(S.card["title"], as_="h3", size="3"),
        rx.table.root(
            rx.table.body(
                _fact("Task", "task"),
                _fact("Framework", "framework"),
                _fact("Classes", "classes"),
                _fact("Input size", "input_size"),
                _fact("Validation metrics", "val_metrics"),
                _fact("Test metrics", "test_metrics"),
                _fact("Training data", "training_data"),
                _fact("Registered by", "registered_by"),
                _fact("Description", "description"),
                _fact("MLflow", "mlflow"),
                _fact("Exports", "exports"),
            ),
            id="model-card",
            size="1",
        ),
        rx.hstack(
            rx.foreach(
                S.downloads,
                lambda d: rx.link(
                    rx.button(
                        rx.icon("download", size=14, aria_hidden="true"), "Download ", d["label"], size="1"
                    ),
                    href=d["url"],
                    is_external=True,
                    id="download-" + d["label"],
                ),
            ),
            rx.link(
                rx.button(rx.icon("sparkles", size=14, aria_hidden="true"), "Fine-tune from this", size="1"),
                href=S.card["fine_tune_href"],
                id="fine-tune",
            ),
            spacing="2",
            wrap="wrap",
        ),
        permission_gate(
            rx.form(
                rx.hstack(
                    field(
                        "Alias",
                        rx.input(name="alias", id="alias-name", placeholder="champion"),
                        html_for="alias-name",
                    ),
                    rx.button("Point at this version", type="submit", id="set-alias", disabled=S.busy),
                    rx.foreach(
                        S.chosen_aliases,
                        lambda a: rx.button(
                            rx.icon("x", size=14, aria_hidden="true"),
                            "Remove ",
                            a,
                            on_click=S.remove_alias(a),
                            disabled=S.busy,
                            variant="outline",
                            color_scheme="red",
                            id="remove-alias-" + a,
                        ),
                    ),
                    align="end",
                    spacing="2",
                    wrap="wrap",
                ),
                on_submit=S.set_alias,
                reset_on_submit=True,
            ),
            allowed=S.can_alias,
            action=Action.model_alias,
            what="Moving aliases",
            id="alias",
        ),
        title="Model card",
    )


def register_card() -> rx.Component:
    return card(
        rx.form(
            rx.hstack(
                field(
                    "Succeeded job",
                    native_select(S.jobs, id="register-job", name="job_id", min_width="240px"),
                    html_for="register-job",
                ),
                field(
                    "Model name",
                    rx.input(name="name", id="register-name", max_length=100),
                    html_for="register-name",
                ),
                field(
                    "Description (optional)",
                    rx.input(name="description", id="register-description", max_length=2000),
                    html_for="register-description",
                ),
                rx.button("Register", type="submit", id="register", disabled=S.busy),
                align="end",
                spacing="3",
                wrap="wrap",
            ),
            on_submit=S.register,
        ),
        rx.divider(),
        rx.hstack(
            field(
                "Model name for the upload",
                rx.input(value=S.upload_name, on_change=S.set_upload_name, id="upload-name", max_length=100),
                html_for="upload-name",
            ),
            labelled_upload(
                rx.upload.root(
                    rx.text(
                        "Drop weights here, or click: Ultralytics .pt, timm .pt/.pth, .safetensors", size="2"
                    ),
                    id=UPLOAD_ID,
                    max_files=1,
                    multiple=False,
                    on_drop=S.upload_weights(rx.upload_files(upload_id=UPLOAD_ID)),
                    border=f"2px dashed {tokens.BORDER}",
                    border_radius=tokens.RADIUS["md"],
                    padding=tokens.SPACE["sm"],
                    cursor="pointer",
                ),
                "Weights file to upload",
            ),
            align="end",
            spacing="3",
            wrap="wrap",
        ),
        rx.text(
            "Uploads are loaded by the trainer with torch.load(weights_only=True) or safetensors; "
            "whole pickled models and files naming other code are refused.",
            size="1",
            color=tokens.TEXT_MUTED,
        ),
        title="Register or upload",
    )


def registry_page() -> rx.Component:
    return page_shell(
        rx.hstack(
            rx.link(
                "← Models", href="/projects/" + S.project_id.to_string() + "/models", color=tokens.PRIMARY
            ),
            spacing="3",
        ),
        rx.cond(
            S.load_error != "",
            rx.callout(
                S.load_error, icon="triangle_alert", color_scheme="red", role="alert", id="registry-error"
            ),
        ),
        rx.cond(
            S.error != "",
            rx.callout(
                S.error, icon="triangle_alert", color_scheme="red", role="alert", id="registry-action-error"
            ),
        ),
        rx.cond(
            S.message != "",
            rx.callout(S.message, icon="check", color_scheme="green", role="status", id="registry-message"),
        ),
        models_table(),
        rx.cond(
            S.versions.length() > 0, rx.vstack(versions_table(), model_card(), width="100%", spacing="4")
        ),
        permission_gate(
            register_card(),
            allowed=S.can_register,
            action=Action.model_register,
            what="Registering models",
            id="register",
        ),
        title="Model registry",
        username=S.username,
        avatar_name=S.avatar_name,
        badge_color=S.badge_color,
        on_sign_out=S.sign_out,
    )
