"""/projects/[project_id]/models: trained models, export buttons and the inference playground."""

from __future__ import annotations

import reflex as rx

from components import tokens
from components.a11y import labelled_upload
from components.layout import card, field, native_select, page_shell
from components.permission_gate import permission_gate
from services.domain.permissions import Action
from state.models_state import EXPORT_LABELS, ModelsState

S = ModelsState
UPLOAD_ID = "inference-upload"


def models_card() -> rx.Component:
    def row(r: rx.Var) -> rx.Component:
        busy = S.exporting == r["id"]
        return rx.table.row(
            rx.table.row_header_cell(
                rx.link("#", r["id"], " ", r["name"], href=r["href"], color=tokens.PRIMARY)
            ),
            rx.table.cell(r["model"]),
            rx.table.cell(r["task"]),
            rx.table.cell(r["best"]),
            rx.table.cell(r["last"]),
            rx.table.cell(rx.text(r["exports"], size="1"), id="exports-" + r["id"]),
            rx.table.cell(
                permission_gate(
                    rx.flex(
                        rx.cond(busy, rx.spinner(size="1")),
                        *[
                            rx.button(
                                rx.icon("package", size=14, aria_hidden="true"),
                                label,
                                on_click=S.export(r["id"], [fmt]),
                                disabled=S.exporting != "",
                                size="1",
                                variant="outline",
                                id=f"export-{fmt}-" + r["id"],
                            )
                            for fmt, label in EXPORT_LABELS.items()
                        ],
                        wrap="wrap",
                        gap="2",
                    ),
                    allowed=S.can_export,
                    action=Action.model_export,
                    what="Exporting",
                )
            ),
            custom_attrs={"data-job-id": r["id"]},
        )

    return card(
        rx.cond(
            S.rows.length() > 0,
            rx.table.root(
                rx.el.caption("Succeeded jobs with their checkpoints and exports", class_name="sr-only"),
                rx.table.header(
                    rx.table.row(
                        *[
                            rx.table.column_header_cell(h, scope="col")
                            for h in ("Job", "Model", "Task", "Best", "Last", "Exports", "Export")
                        ]
                    )
                ),
                rx.table.body(rx.foreach(S.rows, row)),
                id="models-table",
                width="100%",
                variant="surface",
                size="2",
            ),
            rx.text(
                rx.cond(S.loaded, "No trained models yet: a job that succeeds appears here.", "Loading…"),
                color=tokens.TEXT_MUTED,
                id="models-empty",
            ),
        ),
        rx.cond(
            S.export_message != "",
            rx.callout(S.export_message, icon="info", role="status", id="export-message"),
        ),
        rx.text(
            "Every export is run by its own runtime and compared with the PyTorch model on a sample "
            "image; the message shows the difference and the tolerance. CoreML is not offered: "
            "coremltools runs models only on macOS, so its output cannot be checked here.",
            size="1",
            color=tokens.TEXT_MUTED,
        ),
        title="Models",
    )


def playground_card() -> rx.Component:
    overlay = lambda o: rx.box(  # noqa: E731
        rx.text(
            o["label"],
            as_="span",
            size="1",
            background_color=o["color"],
            color=tokens.PRIMARY_TEXT,
            padding_x="4px",
            position="absolute",
            top="-18px",
            left="-2px",
            white_space="nowrap",
        ),
        position="absolute",
        left=o["left"],
        top=o["top"],
        width=o["width"],
        height=o["height"],
        border="2px solid",
        border_color=o["color"],
        class_name="prediction-box",
    )
    return card(
        rx.flex(
            field(
                "Model",
                native_select(
                    S.model_options,
                    id="inference-model",
                    name="model",
                    value=S.chosen_job,
                    on_change=S.choose_job,
                    min_width="260px",
                ),
                html_for="inference-model",
            ),
            field(
                "Or a model reference",
                rx.input(
                    value=S.model_ref,
                    on_change=S.set_model_ref,
                    placeholder="jobs/12 or models/name@alias",
                    id="inference-ref",
                    min_width="240px",
                ),
                html_for="inference-ref",
            ),
            labelled_upload(
                rx.upload.root(
                    rx.vstack(
                        rx.icon("image_up", size=22, aria_hidden="true"),
                        rx.text("Drop an image here, or click to choose one (PNG, JPEG, WebP)", size="2"),
                        align="center",
                        spacing="1",
                    ),
                    id=UPLOAD_ID,
                    accept={"image/png": [".png"], "image/jpeg": [".jpg", ".jpeg"], "image/webp": [".webp"]},
                    max_files=1,
                    multiple=False,
                    on_drop=S.handle_upload(rx.upload_files(upload_id=UPLOAD_ID)),
                    border=f"2px dashed {tokens.BORDER}",
                    border_radius=tokens.RADIUS["md"],
                    padding=tokens.SPACE["md"],
                    cursor="pointer",
                ),
                "Image to run inference on",
            ),
            wrap="wrap",
            spacing="5",
            align="end",
        ),
        rx.cond(
            S.predict_error != "",
            rx.callout(
                S.predict_error, icon="triangle_alert", color_scheme="red", role="alert", id="predict-error"
            ),
        ),
        rx.cond(S.predicting, rx.hstack(rx.spinner(), rx.text("Running the model…"), id="predicting")),
        rx.cond(
            S.image_src != "",
            rx.flex(
                rx.box(
                    rx.image(src=S.image_src, alt="The uploaded image", width="100%", display="block"),
                    rx.foreach(S.overlays, overlay),
                    position="relative",
                    max_width="560px",
                    width="100%",
                    id="inference-image",
                    custom_attrs={"data-boxes": S.overlays.length().to_string()},
                ),
                rx.vstack(
                    rx.text("Inference: ", S.inference_ms, size="2", color=tokens.TEXT_MUTED),
                    rx.cond(
                        ~S.predicting & (S.inference_ms != "") & (S.predictions.length() == 0),
                        rx.text(
                            "The model found nothing above the confidence threshold (0.25) in this image.",
                            id="no-predictions",
                            size="2",
                        ),
                    ),
                    rx.table.root(
                        rx.table.header(
                            rx.table.row(
                                *[
                                    rx.table.column_header_cell(h, scope="col")
                                    for h in ("Label", "Score", "Box (px)")
                                ]
                            )
                        ),
                        rx.table.body(
                            rx.foreach(
                                S.predictions,
                                lambda p: rx.table.row(
                                    rx.table.row_header_cell(p["label"]),
                                    rx.table.cell(p["score"]),
                                    rx.table.cell(p["box"]),
                                ),
                            )
                        ),
                        id="predictions-table",
                        variant="surface",
                        size="1",
                    ),
                ),
                spacing="5",
                wrap="wrap",
            ),
        ),
        title="Inference playground",
    )


def batch_card() -> rx.Component:
    """Queue a batch run: the playground's model (or reference) over a whole dataset version."""
    return card(
        rx.text(
            "Runs the model chosen above (or the reference typed there) over every image of a dataset "
            "version, as a queued job: predictions as JSON Lines and CSV, counts per class, a score "
            "histogram and a gallery on its job page. A zip of images can be sent through the REST API "
            "(POST /api/v1/projects/{id}/batch-inference/upload).",
            size="2",
            color=tokens.TEXT_MUTED,
        ),
        rx.flex(
            field(
                "Dataset version",
                native_select(
                    S.versions,
                    id="batch-version",
                    name="batch_version",
                    value=S.batch_version,
                    on_change=S.choose_version,
                    min_width="260px",
                ),
                html_for="batch-version",
            ),
            rx.button(
                rx.cond(
                    S.batch_running, rx.spinner(size="2"), rx.icon("layers", size=16, aria_hidden="true")
                ),
                "Run on the whole dataset",
                on_click=S.run_batch,
                disabled=S.batch_running,
                id="run-batch",
            ),
            gap="4",
            align="end",
            wrap="wrap",
        ),
        rx.cond(
            S.batch_message != "",
            rx.callout(
                rx.cond(
                    S.batch_job_href != "",
                    rx.link(S.batch_message, href=S.batch_job_href, id="batch-job-link"),
                    S.batch_message,
                ),
                icon="info",
                role="status",
                id="batch-message",
            ),
        ),
        title="Batch inference",
    )


def models_page() -> rx.Component:
    return page_shell(
        rx.hstack(
            rx.link("← Jobs", href="/projects/" + S.project_id.to_string() + "/jobs", color=tokens.PRIMARY),
            rx.link(
                "Model registry →",
                href="/projects/" + S.project_id.to_string() + "/registry",
                color=tokens.PRIMARY,
                id="to-registry",
            ),
            spacing="4",
        ),
        rx.cond(
            S.load_error != "",
            rx.callout(
                S.load_error, icon="triangle_alert", color_scheme="red", role="alert", id="models-error"
            ),
        ),
        models_card(),
        rx.cond(
            S.rows.length() > 0,
            permission_gate(
                playground_card(),
                allowed=S.can_predict,
                action=Action.model_predict,
                what="Running inference",
                id="predict",
            ),
        ),
        rx.cond(
            S.rows.length() > 0,
            permission_gate(
                batch_card(),
                allowed=S.can_batch,
                action=Action.job_create,
                what="Batch inference",
                id="batch",
            ),
        ),
        title="Models",
        username=S.username,
        avatar_name=S.avatar_name,
        badge_color=S.badge_color,
        on_sign_out=S.sign_out,
    )
