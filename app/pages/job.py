"""/jobs/[job_id]: status, live metrics chart, logs, artifacts, Cancel."""

from __future__ import annotations

from collections.abc import Callable

import reflex as rx

from components import tokens
from components.layout import card, page_shell
from components.metrics_panel import metrics_panel, per_class_results
from components.permission_gate import permission_gate
from components.prediction_grid import legend, prediction_grid
from components.status_indicator import status_indicator
from services.domain.permissions import Action
from state.job_state import JobPageState

S = JobPageState


def _fact(label: str | rx.Var, value: rx.Component | rx.Var | str, id: str) -> rx.Component:
    return rx.vstack(
        rx.text(label, size="1", color=tokens.TEXT_MUTED, weight="medium", as_="div"),
        rx.box(value, id=id, color=tokens.TEXT, font_size="14px"),
        spacing="1",
        min_width="140px",
    )


def _own_or_others(
    control: Callable[[], rx.Component], *, allowed: rx.Var[bool], action: Action, what: str, id: str
) -> rx.Component:
    """Gate a job action whose role depends on whose job it is: members act on their own jobs,
    admins on anyone's, so the note names the role this job needs."""
    gate = {"allowed": allowed, "action": action, "id": id}
    mine = permission_gate(control(), what=f"{what} your job", own=True, **gate)
    others = permission_gate(control(), what=f"{what} others' jobs", **gate)
    return rx.cond(S.own_job, mine, others)


def _cancel_button() -> rx.Component:
    return rx.button(
        rx.cond(S.cancelling, rx.spinner(size="2"), rx.icon("ban", size=16, aria_hidden="true")),
        "Cancel job",
        on_click=S.cancel,
        disabled=S.cancelling,
        background_color=tokens.DANGER,
        color=tokens.PRIMARY_TEXT,
        id="cancel-job",
    )


def _retry_buttons() -> rx.Component:
    return rx.hstack(
        rx.button(
            rx.icon("step_forward", size=16, aria_hidden="true"),
            "Resume from last checkpoint",
            on_click=S.retry(True),
            disabled=S.retrying,
            background_color=tokens.PRIMARY,
            color=tokens.PRIMARY_TEXT,
            id="resume-job",
        ),
        rx.button(
            rx.icon("rotate_ccw", size=16, aria_hidden="true"),
            "Retry from scratch",
            on_click=S.retry(False),
            disabled=S.retrying,
            variant="outline",
            color=tokens.PRIMARY,
            id="retry-job",
        ),
        rx.cond(S.retrying, rx.spinner(size="2")),
        spacing="3",
    )


def tags_form() -> rx.Component:
    return rx.form(
        rx.hstack(
            rx.el.label("Tags", html_for="tags-input", class_name="sr-only"),
            rx.input(
                name="tags",
                id="tags-input",
                default_value=S.tags_text,
                key=S.tags_text,
                placeholder="baseline paper (space-separated)",
                width="280px",
            ),
            rx.button("Save tags", type="submit", variant="outline", id="save-tags"),
            rx.text(S.tags_message, id="tags-message", size="2", color=tokens.TEXT_MUTED, role="status"),
            align="center",
            spacing="2",
        ),
        on_submit=S.save_tags,
    )


def summary_card() -> rx.Component:
    return card(
        rx.flex(
            _fact("State", status_indicator(S.state_label, live=True), "job-state"),
            _fact(S.progress_label, S.epoch_text, "job-epoch"),
            _fact("Checkpoint", S.checkpoint_text, "job-checkpoint"),
            _fact("Model", S.model, "job-model"),
            _fact("Device", S.device, "job-device"),
            _fact("Resources", S.resources_text, "job-resources"),
            _fact(
                "MLflow run",
                rx.cond(
                    S.mlflow_run_id != "",
                    rx.cond(
                        S.mlflow_url != "",
                        rx.link(
                            rx.code(S.mlflow_run_id),
                            rx.icon("external_link", size=14, aria_hidden="true"),
                            href=S.mlflow_url,
                            is_external=True,
                            id="mlflow-link",
                            aria_label="MLflow run " + S.mlflow_run_id + " (opens in a new tab)",
                        ),
                        rx.code(S.mlflow_run_id),
                    ),
                    "—",
                ),
                "job-mlflow-run",
            ),
            _fact("Created", S.created, "job-created"),
            _fact("Tags", rx.cond(S.tags_text != "", S.tags_text, "—"), "job-tags"),
            rx.cond(
                S.sweep_href != "",
                _fact("Sweep", rx.link(S.sweep_text, href=S.sweep_href, color=tokens.PRIMARY), "job-sweep"),
            ),
            wrap="wrap",
            spacing="6",
        ),
        rx.cond(S.can_tag, tags_form()),
        rx.cond(
            S.queue_message != "",
            rx.callout(S.queue_message, icon="hourglass", color_scheme="gray", role="status", id="job-queue"),
        ),
        rx.cond(
            S.error_message != "",
            rx.callout(
                rx.text(rx.cond(S.error_kind != "", rx.text.strong(S.error_kind, ": "), ""), S.error_message),
                icon="circle_x",
                color_scheme="red",
                role="alert",
                id="job-error",
            ),
        ),
        rx.cond(
            S.cancellable,
            _own_or_others(
                lambda: rx.hstack(_cancel_button()),
                allowed=S.can_cancel,
                action=Action.job_cancel,
                what="Cancelling",
                id="cancel",
            ),
        ),
        rx.cond(S.cancel_message != "", rx.text(S.cancel_message, id="cancel-message", role="status")),
        rx.cond(
            S.live_message != "",
            rx.callout(
                S.live_message, icon="wifi_off", color_scheme="amber", role="status", id="job-live-paused"
            ),
        ),
        rx.cond(
            S.stale_message != "",
            rx.callout(
                S.stale_message, icon="clock_alert", color_scheme="amber", role="status", id="job-stale"
            ),
        ),
        rx.cond(
            S.retryable,
            _own_or_others(
                _retry_buttons,
                allowed=S.can_retry,
                action=Action.job_retry,
                what="Retrying or resuming",
                id="retry",
            ),
        ),
        rx.cond(S.retry_message != "", rx.text(S.retry_message, id="retry-message", role="alert")),
    )


def chart_card() -> rx.Component:
    return card(
        metrics_panel(
            figure=S.figure,
            title=S.chart_title,
            points_count=S.points_count,
            points_label=S.points_label,
            finished=S.finished,
        )
    )


def logs_card() -> rx.Component:
    return card(
        rx.cond(
            S.log_lines.length() > 0,
            rx.el.pre(
                rx.foreach(S.log_lines, lambda line: rx.text(line, as_="div")),
                id="job-logs",
                font_family=tokens.MONO_FAMILY,
                font_size="12px",
                background_color=tokens.TEXT,
                color="#e2e8f0",
                padding=tokens.SPACE["md"],
                border_radius=tokens.RADIUS["sm"],
                overflow_x="auto",
                max_height="320px",
                overflow_y="auto",
                tab_index=0,
                aria_label="Last log lines",
            ),
            rx.text("No log lines yet.", color=tokens.TEXT_MUTED, id="job-logs-empty"),
        ),
        title="Last log lines",
    )


def artifacts_card() -> rx.Component:
    row = lambda a: rx.table.row(  # noqa: E731
        rx.table.row_header_cell(rx.code(a["name"], word_break="break-all")),
        rx.table.cell(a["kind"]),
        rx.table.cell(a["size"], white_space="nowrap"),
        rx.table.cell(
            rx.link(
                rx.icon("download", size=14, aria_hidden="true"),
                "Download",
                href=a["url"],
                color=tokens.PRIMARY,
                aria_label="Download " + a["name"],
                custom_attrs={"download": ""},
            )
        ),
    )
    return card(
        rx.cond(
            S.files.length() > 0,
            rx.table.root(
                rx.el.caption("Files this job stored", class_name="sr-only"),
                rx.table.header(
                    rx.table.row(
                        *[rx.table.column_header_cell(h, scope="col") for h in ("File", "Kind", "Size")],
                        rx.table.column_header_cell(
                            rx.el.span("Download", class_name="sr-only"), scope="col"
                        ),
                    )
                ),
                rx.table.body(rx.foreach(S.files, row)),
                id="job-artifacts",
                width="100%",
                variant="surface",
                size="1",
            ),
            rx.text(
                rx.cond(
                    S.finished,
                    "This job left no artifacts.",
                    "No artifacts yet: checkpoints and results appear as the job trains.",
                ),
                color=tokens.TEXT_MUTED,
                id="job-artifacts-empty",
            ),
        ),
        title="Artifacts and exports",
    )


def final_results_card() -> rx.Component:
    """best.pt's figures at the end of the job, each row naming the dataset split it comes from."""
    row = lambda m: rx.table.row(  # noqa: E731
        rx.table.row_header_cell(rx.code(m["name"])),
        rx.table.cell(m["value"]),
        rx.table.cell(m["split"]),
        custom_attrs={"data-metric": m["name"]},
    )
    return rx.cond(
        S.final_figures.length() > 0,
        card(
            rx.table.root(
                rx.el.caption("Final metrics of the best checkpoint by dataset split", class_name="sr-only"),
                rx.table.header(
                    rx.table.row(
                        *[rx.table.column_header_cell(h, scope="col") for h in ("Metric", "Value", "Split")]
                    )
                ),
                rx.table.body(rx.foreach(S.final_figures, row)),
                id="job-final-metrics",
                width="100%",
                variant="surface",
                size="1",
            ),
            title="Final results (best checkpoint)",
        ),
    )


def confusion_drill() -> rx.Component:
    """Pick a cell (or click one on the heatmap) to list the images behind it."""
    select = lambda id, value, on_change: rx.el.select(  # noqa: E731
        rx.el.option("—", value=""),
        rx.foreach(S.confusion_names, lambda n: rx.el.option(n, value=n)),
        id=id,
        value=value,
        on_change=on_change,
        padding="6px 8px",
        border=f"1px solid {tokens.BORDER}",
        border_radius=tokens.RADIUS["sm"],
        background_color=tokens.SURFACE,
        color=tokens.TEXT,
        min_height="32px",
    )
    return rx.vstack(
        rx.hstack(
            rx.el.label("True class", html_for="drill-true", font_size="14px"),
            select("drill-true", S.drill_true, S.set_drill_true),
            rx.el.label("Predicted as", html_for="drill-predicted", font_size="14px"),
            select("drill-predicted", S.drill_predicted, S.set_drill_predicted),
            rx.button("Show images", on_click=S.drill_cell, variant="outline", id="drill-show"),
            rx.cond(S.drill_loading, rx.spinner(size="2")),
            spacing="2",
            align="center",
            wrap="wrap",
        ),
        rx.text(
            "Images come from the predictions stored at the end of the job (score 0.25 and up); "
            "the matrix counts the last epoch's validation, so the two can differ.",
            size="1",
            color=tokens.TEXT_MUTED,
        ),
        rx.cond(S.drill_message != "", rx.text(S.drill_message, size="2", role="status", id="drill-message")),
        rx.cond(
            S.drill_rows.length() > 0,
            rx.vstack(
                legend(),
                prediction_grid(S.drill_rows),
                rx.hstack(
                    rx.button("Previous", on_click=S.drill_previous, variant="outline", id="drill-prev"),
                    rx.button("Next", on_click=S.drill_next, variant="outline", id="drill-next"),
                    spacing="2",
                ),
                width="100%",
            ),
        ),
        width="100%",
        id="confusion-drill",
    )


def validation_card() -> rx.Component:
    plot = lambda fig, id, label: rx.box(  # noqa: E731
        rx.plotly(data=fig, config={"displaylogo": False, "responsive": True}, width="100%"),
        id=id,
        width="100%",
        role="figure",
        aria_label=label,
    )
    per_class = per_class_results(headers=S.per_class_headers, rows=S.per_class)
    gallery = rx.cond(
        S.gallery.length() > 0,
        rx.flex(
            rx.foreach(
                S.gallery,
                lambda g: rx.el.figure(
                    rx.image(
                        src=g["src"], alt=g["caption"], max_width="280px", border_radius=tokens.RADIUS["sm"]
                    ),
                    rx.el.figcaption(g["caption"], font_size="12px", color=tokens.TEXT_MUTED),
                    margin="0",
                ),
            ),
            wrap="wrap",
            spacing="4",
            id="predictions-gallery",
        ),
        rx.text(
            "Predictions on validation images appear when the job finishes.",
            color=tokens.TEXT_MUTED,
            id="predictions-empty",
        ),
    )
    return card(
        rx.text(
            rx.cond(
                S.validation_epoch != "",
                "From the validation after epoch " + S.validation_epoch + ".",
                "No validation results yet: they arrive with each finished epoch.",
            ),
            color=tokens.TEXT_MUTED,
            size="2",
            id="validation-epoch",
        ),
        rx.tabs.root(
            rx.tabs.list(
                rx.tabs.trigger("Per class", value="per-class", id="tab-per-class"),
                rx.tabs.trigger("Confusion matrix", value="confusion", id="tab-confusion"),
                rx.tabs.trigger("PR curve", value="pr", id="tab-pr"),
                rx.tabs.trigger("Predictions", value="gallery", id="tab-gallery"),
            ),
            rx.tabs.content(per_class, value="per-class", padding_top=tokens.SPACE["md"]),
            rx.tabs.content(
                rx.box(
                    rx.plotly(
                        data=S.confusion_figure,
                        config={"displaylogo": False, "responsive": True},
                        width="100%",
                        on_click=S.drill_from_plot,
                    ),
                    id="confusion-matrix",
                    width="100%",
                    role="figure",
                    aria_label="Confusion matrix heatmap: click a cell to list its images",
                ),
                rx.cond(S.has_confusion, confusion_drill()),
                value="confusion",
                padding_top=tokens.SPACE["md"],
            ),
            rx.tabs.content(
                plot(S.pr_figure, "pr-curve", "Precision-recall curve per class"),
                value="pr",
                padding_top=tokens.SPACE["md"],
            ),
            rx.tabs.content(gallery, value="gallery", padding_top=tokens.SPACE["md"]),
            default_value="per-class",
            id="validation-tabs",
        ),
        title="Validation",
    )


def batch_card() -> rx.Component:
    """A batch inference run: what it did (images done, failed, results files), counts per class,
    score histogram, gallery, downloads. It takes the place of training's final metrics."""
    facts = rx.el.dl(
        rx.foreach(
            S.batch_facts,
            lambda f: rx.box(
                rx.el.dt(f["label"], font_size="12px", color=tokens.TEXT_MUTED),
                rx.el.dd(f["value"], margin="0", font_weight="600"),
                custom_attrs={"data-fact": f["label"]},
            ),
        ),
        display="flex",
        flex_wrap="wrap",
        gap="24px",
        margin="0",
        id="batch-facts",
    )
    counts = rx.table.root(
        rx.table.header(
            rx.table.row(
                rx.table.column_header_cell("Class", scope="col"),
                rx.table.column_header_cell("Count", scope="col"),
            )
        ),
        rx.table.body(
            rx.foreach(S.batch_counts, lambda r: rx.table.row(rx.table.cell(r[0]), rx.table.cell(r[1])))
        ),
        size="1",
        id="batch-counts",
    )
    histogram = rx.plotly(
        data=S.batch_histogram,
        id="batch-histogram",
        width="100%",
        role="figure",
        aria_label="Histogram of prediction scores",
    )
    gallery = rx.flex(
        rx.foreach(
            S.gallery,
            lambda g: rx.el.figure(
                rx.image(
                    src=g["src"], alt=g["caption"], max_width="220px", border_radius=tokens.RADIUS["sm"]
                ),
                rx.el.figcaption(g["caption"], font_size="12px", color=tokens.TEXT_MUTED),
                margin="0",
            ),
        ),
        wrap="wrap",
        spacing="4",
        id="batch-gallery",
    )
    downloads = rx.hstack(
        rx.text("Results files:", size="2", color=tokens.TEXT_MUTED),
        rx.foreach(
            S.batch_downloads,
            lambda d: rx.link(rx.icon("download", size=14, aria_hidden="true"), d["label"], href=d["url"]),
        ),
        spacing="4",
        id="batch-downloads",
    )
    return card(
        rx.text(S.batch_text, id="batch-summary"),
        facts,
        downloads,
        rx.flex(rx.box(counts, min_width="220px"), rx.box(histogram, flex="1"), gap="4", wrap="wrap"),
        gallery,
        title="Batch inference results",
    )


def job_page() -> rx.Component:
    busy = rx.cond(
        S.busy_message != "",
        rx.callout(S.busy_message, icon="loader", color_scheme="amber", role="status", id="job-busy"),
    )
    body = rx.cond(
        S.not_found != "",
        rx.callout(S.not_found, icon="triangle_alert", color_scheme="red", role="alert", id="job-not-found"),
        rx.cond(
            S.loaded,
            rx.vstack(
                summary_card(),
                rx.cond(
                    S.is_batch,
                    batch_card(),
                    rx.fragment(final_results_card(), chart_card(), validation_card()),
                ),
                logs_card(),
                artifacts_card(),
                spacing="5",
                align="stretch",
                width="100%",
            ),
            rx.hstack(rx.spinner(), rx.text("Loading job…"), align="center"),
        ),
    )
    return page_shell(
        rx.link("← All jobs", href="/", color=tokens.PRIMARY, id="back-to-jobs"),
        busy,
        body,
        title=rx.cond(S.job_name != "", S.job_name, "Job"),
        username=S.username,
        avatar_name=S.avatar_name,
        badge_color=S.badge_color,
        on_sign_out=S.sign_out,
    )
