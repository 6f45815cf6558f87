"""Datasets: `/projects/[project_id]/datasets` (list + upload with a progress bar) and
`/projects/[project_id]/datasets/[dataset_id]` (versions, split dialog, statistics, gallery)."""

from __future__ import annotations

import reflex as rx

from components import tokens
from components.a11y import labelled_upload
from components.dataset_preview import dataset_previews
from components.layout import card, field, page_shell
from components.permission_gate import permission_gate
from components.project_nav import (
    data_table,
    empty_state,
    error_state,
    loading_state,
    primary_button,
    project_nav,
)
from services.domain.permissions import Action
from state.dataset_preview_state import DatasetPreviewState
from state.datasets_state import UPLOAD_ID, DatasetDetailState, DatasetsState

S = DatasetsState
D = DatasetDetailState
P = DatasetPreviewState

# --- the list page -----------------------------------------------------------------------------


def report_table() -> rx.Component:
    row = lambda p: rx.table.row(  # noqa: E731
        rx.table.row_header_cell(rx.code(p["file"])),
        rx.table.cell(p["line"]),
        rx.table.cell(p["message"]),
    )
    return data_table(
        ["File", "Line", "Problem"],
        rx.foreach(S.report_rows, row),
        id="report-table",
        caption="Validation report",
        size="1",
    )


def upload_card() -> rx.Component:
    picker = rx.upload.root(
        rx.vstack(
            rx.icon("file_archive", size=28, color=tokens.PRIMARY, aria_hidden="true"),
            rx.text("Drop a .zip here, or press Enter to choose one", weight="medium"),
            rx.text(
                "YOLO (detect or segment), COCO or ImageFolder layout.", size="2", color=tokens.TEXT_MUTED
            ),
            rx.foreach(
                rx.selected_files(UPLOAD_ID),
                lambda f: rx.text("Selected: ", rx.code(f), size="2", id="upload-selected"),
            ),
            align="center",
            spacing="1",
        ),
        id=UPLOAD_ID,
        accept={"application/zip": [".zip"], "application/x-zip-compressed": [".zip"]},
        max_files=1,
        multiple=False,
        border=f"2px dashed {tokens.BORDER}",
        border_radius=tokens.RADIUS["md"],
        padding=tokens.SPACE["lg"],
        width="100%",
        cursor="pointer",
        aria_label="Choose a dataset zip file",
        class_name="focusable",
    )
    picker = labelled_upload(picker, "Dataset zip file")
    progress = rx.cond(
        S.upload_phase != "",
        rx.vstack(
            rx.progress(
                value=S.upload_percent,
                max=100,
                id="upload-progress",
                aria_label="Upload progress",
                custom_attrs={"aria-valuenow": S.upload_percent, "data-percent": S.upload_percent},
                color_scheme="indigo",
            ),
            rx.hstack(
                rx.text(S.upload_percent, "%", id="upload-percent", weight="bold"),
                rx.text(S.upload_bytes_text, id="upload-bytes", color=tokens.TEXT_MUTED),
                rx.match(
                    S.upload_phase,
                    ("uploading", rx.text("Uploading…", color=tokens.TEXT_MUTED)),
                    ("validating", rx.hstack(rx.spinner(size="1"), rx.text("Checking the dataset…"))),
                    rx.fragment(),
                ),
                spacing="3",
                align="center",
                role="status",
            ),
            width="100%",
            spacing="2",
        ),
    )
    outcome = rx.match(
        S.upload_phase,
        (
            "done",
            rx.callout(
                rx.text(S.upload_message, " ", rx.link("Open the dataset", href=S.upload_href)),
                icon="circle_check",
                color_scheme="green",
                id="upload-done",
                role="status",
            ),
        ),
        ("rejected", error_state(S.upload_message, "upload-rejected")),
        ("failed", error_state(S.upload_message, "upload-failed")),
        ("cancelled", rx.callout(S.upload_message, icon="ban", color_scheme="gray", id="upload-cancelled")),
        rx.fragment(),
    )
    form = rx.vstack(
        picker,
        rx.flex(
            field(
                "Dataset name (optional: the file name by default)",
                rx.input(
                    id="upload-name",
                    value=S.upload_name,
                    on_change=S.set_upload_name,
                    max_length=120,
                    width="320px",
                ),
                html_for="upload-name",
            ),
            rx.hstack(
                primary_button(
                    rx.icon("upload", size=16, aria_hidden="true"),
                    "Upload",
                    id="upload-start",
                    disabled=S.upload_busy,
                    on_click=[
                        S.start_upload,
                        S.handle_upload(
                            rx.upload_files(upload_id=UPLOAD_ID, on_upload_progress=S.upload_progress)
                        ),
                    ],
                ),
                rx.cond(
                    S.upload_phase == "uploading",
                    rx.button(
                        "Cancel upload",
                        variant="outline",
                        color=tokens.DANGER,
                        id="upload-cancel",
                        on_click=[rx.cancel_upload(UPLOAD_ID), S.upload_cancelled],
                    ),
                ),
                spacing="3",
                align="end",
            ),
            spacing="4",
            align="end",
            wrap="wrap",
        ),
        progress,
        outcome,
        rx.cond(
            S.report_rows.length() > 0,
            rx.vstack(
                rx.heading(
                    rx.cond(S.upload_phase == "rejected", "Problems", "Warnings"),
                    as_="h3",
                    size="3",
                    color=tokens.TEXT,
                ),
                report_table(),
                width="100%",
                align="stretch",
            ),
        ),
        spacing="3",
        align="stretch",
        width="100%",
    )
    return card(
        permission_gate(
            form, allowed=S.can_upload, action=Action.dataset_write, what="Uploading datasets", id="upload"
        ),
        title="Upload a dataset",
    )


def datasets_list_card() -> rx.Component:
    row = lambda d: rx.table.row(  # noqa: E731
        rx.table.row_header_cell(rx.link(d["name"], href=d["href"], color=tokens.PRIMARY)),
        rx.table.cell(d["version"]),
        rx.table.cell(d["format"]),
        rx.table.cell(d["images"]),
        rx.table.cell(d["classes"]),
        rx.table.cell(d["splits"]),
        rx.table.cell(d["size"]),
        rx.table.cell(d["created"], white_space="nowrap"),
        custom_attrs={"data-dataset-id": d["id"]},
    )
    return card(
        rx.cond(
            S.ds_rows.length() > 0,
            data_table(
                ["Name", "Latest", "Format", "Images", "Classes", "Splits", "Size", "Created"],
                rx.foreach(S.ds_rows, row),
                id="dataset-list",
                caption="Datasets of this project",
            ),
            rx.cond(
                S.ds_loading,
                loading_state("Loading datasets…", "datasets-loading"),
                empty_state(
                    rx.cond(
                        S.can_upload,
                        "No datasets yet. Upload a .zip above to create the first one.",
                        "No datasets yet. A project member can upload one.",
                    ),
                    "datasets-empty",
                ),
            ),
        ),
        title="Datasets",
    )


def previews_card() -> rx.Component:
    """A DatasetPreview per dataset (loaded after the list, in the background: S3 reads)."""
    return rx.cond(
        S.ds_rows.length() > 0,
        card(
            rx.cond(
                P.previews.length() > 0,
                dataset_previews(P.previews, id="dataset-previews"),
                rx.cond(
                    P.previews_message != "",
                    rx.text(P.previews_message, color=tokens.TEXT_MUTED, id="previews-message"),
                    loading_state("Loading previews…", "previews-loading"),
                ),
            ),
            title="Previews",
            on_mount=P.load_previews,
        ),
    )


def datasets_page() -> rx.Component:
    return page_shell(
        project_nav(S.ds_project_id, "Datasets", S.ds_project_name),
        rx.cond(
            S.ds_error != "",
            error_state(S.ds_error, "datasets-error"),
            rx.vstack(
                upload_card(),
                datasets_list_card(),
                previews_card(),
                spacing="5",
                align="stretch",
                width="100%",
            ),
        ),
        title="Datasets",
        username=S.username,
        avatar_name=S.avatar_name,
        badge_color=S.badge_color,
        on_sign_out=S.sign_out,
    )


# --- the dataset page --------------------------------------------------------------------------


def versions_card() -> rx.Component:
    row = lambda v: rx.table.row(  # noqa: E731
        rx.table.row_header_cell(v["label"]),
        rx.table.cell(v["images"]),
        rx.table.cell(v["splits"]),
        rx.table.cell(v["note"]),
        rx.table.cell(v["created"], white_space="nowrap"),
        rx.table.cell(
            rx.cond(
                v["version"] == D.dd_version,
                rx.badge("Shown below", color_scheme="indigo", variant="soft"),
                rx.button(
                    "Show",
                    size="1",
                    variant="outline",
                    on_click=D.select_version(v["version"]),
                    aria_label="Show version " + v["label"],
                ),
            )
        ),
        custom_attrs={"data-version": v["version"]},
    )
    split_button = rx.dialog.trigger(
        primary_button(rx.icon("split", size=16, aria_hidden="true"), "New split…", id="split-open")
    )
    return card(
        rx.hstack(
            permission_gate(
                rx.dialog.root(
                    split_button, split_dialog(), open=D.split_open, on_open_change=D.set_split_open
                ),
                allowed=D.can_split,
                action=Action.dataset_write,
                what="Making a new split",
                id="split",
            ),
            rx.cond(D.split_notice != "", rx.text(D.split_notice, id="split-notice", role="status")),
            spacing="4",
            align="center",
        ),
        rx.cond(
            D.dd_versions.length() > 0,
            data_table(
                ["Version", "Images", "Splits", "How made", "Created", ""],
                rx.foreach(D.dd_versions, row),
                id="versions-table",
                caption="Versions of this dataset",
            ),
            empty_state("This dataset has no versions yet.", "versions-empty"),
        ),
        title="Versions",
    )


def _number(name: str, label: str, default: str) -> rx.Component:
    return field(
        label,
        rx.input(id=f"split-{name}", name=name, default_value=default, width="110px", input_mode="decimal"),
        html_for=f"split-{name}",
    )


def split_dialog() -> rx.Component:
    return rx.dialog.content(
        rx.dialog.title("New split"),
        rx.dialog.description(
            "Makes a new version with the images reassigned to train, val and test; "
            "the shown version stays as it is.",
            size="2",
            color=tokens.TEXT_MUTED,
        ),
        rx.form(
            rx.vstack(
                rx.flex(
                    _number("train", "Train ratio", "0.8"),
                    _number("val", "Val ratio", "0.1"),
                    _number("test", "Test ratio", "0.1"),
                    _number("seed", "Seed", "0"),
                    spacing="3",
                    wrap="wrap",
                ),
                field(
                    "Method",
                    rx.el.select(
                        rx.el.option("Stratified by class", value="stratified"),
                        rx.el.option("Random (seeded)", value="random"),
                        rx.el.option("Keep the uploaded split", value="keep"),
                        id="split-method",
                        name="method",
                        padding="6px 8px",
                        border=f"1px solid {tokens.BORDER}",
                        border_radius=tokens.RADIUS["sm"],
                        background_color=tokens.SURFACE,
                        color=tokens.TEXT,
                        min_height="32px",
                    ),
                    html_for="split-method",
                ),
                rx.cond(D.split_error != "", error_state(D.split_error, "split-error")),
                rx.hstack(
                    rx.dialog.close(rx.button("Cancel", variant="soft", color_scheme="gray", type="button")),
                    primary_button(
                        rx.cond(D.splitting, rx.spinner(size="2"), rx.fragment()),
                        "Create version",
                        type="submit",
                        id="split-submit",
                        disabled=D.splitting,
                    ),
                    justify="end",
                    width="100%",
                ),
                spacing="4",
                align="stretch",
            ),
            on_submit=D.submit_split,
            reset_on_submit=False,
            aria_label="New split",
        ),
        id="split-dialog",
        max_width="520px",
    )


def stats_card() -> rx.Component:
    def chart(title: str, figure: rx.Var, id: str) -> rx.Component:
        return rx.box(
            rx.heading(title, as_="h3", size="3", color=tokens.TEXT),
            rx.plotly(data=figure, id=id, width="100%", config={"displaylogo": False, "responsive": True}),
            width="100%",
            min_width="320px",
            flex="1",
        )

    return card(
        rx.cond(
            D.stats_error != "",
            error_state(D.stats_error, "stats-error"),
            rx.cond(
                D.stats_loading & (D.stats_summary == ""),
                loading_state("Computing statistics…", "stats-loading"),
                rx.vstack(
                    rx.text(D.stats_summary, id="stats-summary", color=tokens.TEXT_MUTED),
                    rx.flex(
                        chart("Instances per class and split", D.class_figure, "chart-classes"),
                        chart("Image sizes", D.sizes_figure, "chart-sizes"),
                        rx.cond(
                            D.has_boxes,
                            chart("Objects per image", D.boxes_figure, "chart-boxes"),
                        ),
                        wrap="wrap",
                        spacing="4",
                        width="100%",
                    ),
                    width="100%",
                    align="stretch",
                ),
            ),
        ),
        title="Statistics",
    )


def _select(id: str, label: str, options: list[rx.Component] | rx.Component, **props) -> rx.Component:
    children = options if isinstance(options, list) else [options]
    return field(
        label,
        rx.el.select(
            *children,
            id=id,
            padding="6px 8px",
            border=f"1px solid {tokens.BORDER}",
            border_radius=tokens.RADIUS["sm"],
            background_color=tokens.SURFACE,
            color=tokens.TEXT,
            min_height="32px",
            **props,
        ),
        html_for=id,
    )


def gallery_card() -> rx.Component:
    tile = lambda i: rx.el.button(  # noqa: E731
        rx.el.span("Open at full size: ", class_name="sr-only"),
        rx.image(src=i["src"], alt=i["name"] + ": " + i["classes"], width="100%", border_radius="4px"),
        rx.text(i["name"], size="1", weight="medium", truncate=True, color=tokens.TEXT),
        rx.text(i["split"], " · ", i["objects"], size="1", color=tokens.TEXT_MUTED),
        on_click=D.open_image(i["index"], i["path"]),
        title="Open " + i["path"] + " at full size",
        class_name="gallery-tile",
        custom_attrs={"data-index": i["index"]},
        background_color=tokens.SURFACE,
        border=f"1px solid {tokens.BORDER}",
        border_radius=tokens.RADIUS["md"],
        padding="6px",
        text_align="left",
        cursor="zoom-in",
    )
    filters = rx.flex(
        _select(
            "gallery-split",
            "Split",
            [
                rx.el.option("All splits", value=""),
                rx.el.option("train", value="train"),
                rx.el.option("val", value="val"),
                rx.el.option("test", value="test"),
            ],
            value=D.gallery_split,
            on_change=D.filter_split,
        ),
        _select(
            "gallery-class",
            "Class",
            [
                rx.el.option("All classes", value=""),
                rx.foreach(D.class_options, lambda c: rx.el.option(c, value=c)),
            ],
            value=D.gallery_class,
            on_change=D.filter_class,
        ),
        rx.spacer(),
        rx.hstack(
            rx.button(
                rx.icon("chevron_left", size=16, aria_hidden="true"),
                "Previous",
                variant="outline",
                on_click=D.page(-1),
                disabled=~D.has_previous,
                id="gallery-previous",
            ),
            rx.text(D.gallery_range, id="gallery-range", size="2", role="status"),
            rx.button(
                "Next",
                rx.icon("chevron_right", size=16, aria_hidden="true"),
                variant="outline",
                on_click=D.page(1),
                disabled=~D.has_next,
                id="gallery-next",
            ),
            align="center",
            spacing="3",
        ),
        spacing="4",
        align="end",
        wrap="wrap",
        width="100%",
    )
    viewer = rx.dialog.root(
        rx.dialog.content(
            rx.dialog.title(D.viewer_title, size="3"),
            rx.cond(
                D.viewer_loading,
                loading_state("Loading the full-size image…", "viewer-loading"),
                rx.cond(
                    D.viewer_src != "",
                    rx.image(src=D.viewer_src, alt=D.viewer_title, max_width="100%", id="viewer-image"),
                ),
            ),
            rx.hstack(
                rx.dialog.close(rx.button("Close", variant="soft", color_scheme="gray", id="viewer-close")),
                justify="end",
            ),
            max_width="1100px",
            id="image-viewer",
        ),
        open=D.viewer_open,
        on_open_change=D.set_viewer_open,
    )
    return card(
        filters,
        rx.cond(
            D.gallery_error != "",
            error_state(D.gallery_error, "gallery-error"),
            rx.cond(
                D.gallery_items.length() > 0,
                rx.grid(
                    rx.foreach(D.gallery_items, tile),
                    columns="repeat(auto-fill, minmax(150px, 1fr))",
                    gap="12px",
                    width="100%",
                    id="gallery",
                    opacity=rx.cond(D.gallery_loading, "0.5", "1"),
                ),
                rx.cond(
                    D.gallery_loading,
                    loading_state("Rendering thumbnails…", "gallery-loading"),
                    empty_state(
                        "No images match these filters. Choose another split or class.", "gallery-empty"
                    ),
                ),
            ),
        ),
        viewer,
        title="Preview",
    )


def dataset_page() -> rx.Component:
    return page_shell(
        project_nav(D.dd_project_id, "Datasets", D.dd_project_name),
        rx.cond(
            D.dd_error != "",
            error_state(D.dd_error, "dataset-error"),
            rx.cond(
                D.dd_loading & (D.dd_versions.length() == 0),
                loading_state("Loading the dataset…", "dataset-loading"),
                rx.vstack(
                    versions_card(), stats_card(), gallery_card(), spacing="5", align="stretch", width="100%"
                ),
            ),
        ),
        title=rx.cond(D.dd_name != "", "Dataset: " + D.dd_name, "Dataset"),
        username=D.username,
        avatar_name=D.avatar_name,
        badge_color=D.badge_color,
        on_sign_out=D.sign_out,
    )
