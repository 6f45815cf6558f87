"""/projects/[project_id]/compare: experiment comparison."""

from __future__ import annotations

from typing import Any

import reflex as rx

from components import tokens
from components.experiment_card import experiment_grid
from components.layout import card, field, page_shell
from components.status_indicator import status_indicator
from state.compare_state import QUERY_HELP, CompareState

S = CompareState
STYLE = {
    "padding": "6px 8px",
    "border": f"1px solid {tokens.BORDER}",
    "border_radius": tokens.RADIUS["sm"],
    "background_color": tokens.SURFACE,
    "color": tokens.TEXT,
    "font_size": "14px",
    "min_height": "32px",
}


def picker() -> rx.Component:
    def row(r: rx.Var) -> rx.Component:
        checked = S.selected.contains(r["id"])
        return rx.table.row(
            rx.table.cell(
                rx.el.input(
                    type="checkbox",
                    checked=checked,
                    on_change=lambda _v: S.toggle(r["id"]),
                    id="pick-" + r["id"],
                    custom_attrs={"aria-label": "Select run " + r["name"]},
                )
            ),
            rx.table.row_header_cell(
                rx.link("#", r["id"], " ", r["name"], href="/jobs/" + r["id"]),
                rx.cond(
                    r["tags"] != "",
                    rx.text(r["tags"], as_="span", size="1", color=tokens.TEXT_MUTED, margin_left="0.5em"),
                ),
            ),
            rx.table.cell(status_indicator(r["state"])),
            rx.table.cell(r["model"]),
            rx.table.cell(r["owner"]),
            rx.table.cell(r["created"], white_space="nowrap"),
            custom_attrs={"data-run-id": r["id"]},
        )

    return card(
        rx.flex(
            field(
                "Filter runs",
                rx.input(
                    id="run-search",
                    value=S.search,
                    on_change=S.set_search.debounce(300),
                    placeholder="lr sweep  params.lr0>=0.01  metrics.map50_95>0.5  tag:baseline",
                    title=QUERY_HELP,
                    aria_describedby="run-search-help",
                    width="420px",
                ),
                html_for="run-search",
            ),
            field(
                "State",
                rx.el.select(
                    rx.el.option("any state", value=""),
                    *[rx.el.option(s, value=s) for s in ("succeeded", "failed", "cancelled", "running")],
                    id="run-state",
                    value=S.state_filter,
                    on_change=S.set_state_filter,
                    **STYLE,
                ),
                html_for="run-state",
            ),
            field(
                "Sort",
                rx.el.select(
                    *[
                        rx.el.option(label, value=value)
                        for value, label in (
                            ("newest", "newest first"),
                            ("oldest", "oldest first"),
                            ("name", "name"),
                            ("model", "model"),
                            ("state", "state"),
                            ("metric:map50_95", "best mAP50-95"),
                            ("metric:top1", "best top-1"),
                        )
                    ],
                    id="run-sort",
                    value=S.run_sort,
                    on_change=S.set_run_sort,
                    **STYLE,
                ),
                html_for="run-sort",
            ),
            rx.button("Select all on page", on_click=S.select_page, variant="outline", id="select-page"),
            rx.button("Clear selection", on_click=S.clear_selection, variant="outline", id="clear-selection"),
            rx.button(
                rx.cond(
                    S.comparing, rx.spinner(size="2"), rx.icon("chart_line", size=16, aria_hidden="true")
                ),
                "Compare selected",
                on_click=S.compare,
                disabled=S.selected.length() == 0,
                background_color=tokens.PRIMARY,
                color=tokens.PRIMARY_TEXT,
                id="compare-runs",
            ),
            rx.cond(
                S.can_compare_predictions,
                rx.link(
                    rx.button("Compare predictions", variant="outline", tab_index=-1),
                    href=S.predictions_href,
                    id="compare-predictions",
                ),
                rx.button(
                    "Compare predictions (pick 2–4)",
                    variant="outline",
                    disabled=True,
                    id="compare-predictions",
                ),
            ),
            wrap="wrap",
            spacing="4",
            align="end",
        ),
        rx.text(QUERY_HELP, id="run-search-help", size="1", color=tokens.TEXT_MUTED),
        rx.table.root(
            rx.el.caption("Runs of this project", class_name="sr-only"),
            rx.table.header(
                rx.table.row(
                    *[
                        rx.table.column_header_cell(h, scope="col")
                        for h in ("Pick", "Run", "State", "Model", "Owner", "Created")
                    ]
                )
            ),
            rx.table.body(rx.foreach(S.page_rows, row)),
            id="runs-table",
            width="100%",
            variant="surface",
            size="1",
        ),
        rx.hstack(
            rx.button(
                "Previous", on_click=S.previous_page, disabled=S.page == 0, variant="soft", id="prev-page"
            ),
            rx.text(S.page_label, id="runs-page-label", size="2", color=tokens.TEXT_MUTED),
            rx.button("Next", on_click=S.next_page, disabled=S.last_page, variant="soft", id="next-page"),
            align="center",
            spacing="3",
        ),
        title="Pick runs",
    )


def results() -> rx.Component:
    hp_row = lambda r: rx.table.row(  # noqa: E731
        rx.table.row_header_cell(
            rx.hstack(
                r["name"],
                rx.cond(r["differs"], rx.badge("differs", color_scheme="amber", variant="soft")),
                spacing="2",
            )
        ),
        rx.foreach(r["values"].to(list[str]), lambda v: rx.table.cell(v)),
        background_color=rx.cond(r["differs"], "#fef3c7", "transparent"),
        custom_attrs={"data-differs": r["differs"].to_string()},
    )
    metric_header = lambda m: rx.table.column_header_cell(  # noqa: E731
        rx.button(
            m,
            rx.cond(S.sort_key == m, rx.cond(S.sort_desc, " ↓", " ↑"), ""),
            on_click=S.sort_by(m),
            variant="ghost",
            size="1",
            id="sort-" + m,
        ),
        scope="col",
        custom_attrs={
            "aria-sort": rx.cond(S.sort_key == m, rx.cond(S.sort_desc, "descending", "ascending"), "none")
        },
    )
    return rx.vstack(
        card(experiment_grid(S.run_cards, id="run-cards"), title="Compared runs"),
        card(
            rx.flex(
                field(
                    "Name this comparison",
                    rx.input(
                        id="view-name",
                        value=S.view_name,
                        on_change=S.set_view_name,
                        placeholder="e.g. lr sweep, week 48",
                        width="240px",
                    ),
                    html_for="view-name",
                ),
                rx.button("Save and share", on_click=S.save_view, variant="outline", id="save-view"),
                rx.button(
                    rx.icon("download", size=16, aria_hidden="true"),
                    "Download all epochs (CSV)",
                    on_click=S.download_csv,
                    variant="outline",
                    id="download-csv",
                ),
                rx.cond(
                    S.view_message != "", rx.text(S.view_message, id="view-message", role="status", size="2")
                ),
                gap="12px",
                align="end",
                wrap="wrap",
            ),
            title="Saved comparisons",
        ),
        card(
            field(
                "Metric",
                rx.el.select(
                    rx.foreach(S.metrics, lambda m: rx.el.option(m, value=m)),
                    id="compare-metric",
                    value=S.metric,
                    on_change=S.set_metric,
                    **STYLE,
                ),
                html_for="compare-metric",
            ),
            figure_box(
                S.curves_figure,
                "compare-chart",
                "Chosen metric per epoch, one line per run",
                custom_attrs={"data-runs": S.run_labels.length().to_string()},
            ),
            title="Curves",
        ),
        card(
            rx.table.root(
                rx.table.header(
                    rx.table.row(
                        rx.table.column_header_cell("Run", scope="col"),
                        rx.foreach(S.table_metrics, metric_header),
                    )
                ),
                rx.table.body(
                    rx.foreach(
                        S.metric_rows,
                        lambda r: rx.table.row(
                            rx.table.row_header_cell("#", r["id"], " ", r["name"]),
                            rx.foreach(r["cells"].to(list[str]), lambda c: rx.table.cell(c)),
                        ),
                    )
                ),
                id="final-metrics",
                width="100%",
                variant="surface",
                size="1",
            ),
            title="Final metrics (click a column to sort)",
            overflow_x="auto",
        ),
        card(
            rx.hstack(
                rx.switch(
                    checked=S.only_differences,
                    on_change=S.set_only_differences,
                    id="only-differences",
                    aria_label="Only show settings that differ",
                ),
                rx.text("Only show settings that differ", as_="label", html_for="only-differences", size="2"),
                rx.cond(
                    S.only_differences & (S.hidden_hp_count > 0),
                    rx.text(
                        S.hidden_hp_count.to_string() + " equal setting(s) hidden",
                        size="1",
                        color_scheme="gray",
                    ),
                ),
                align="center",
                spacing="2",
                margin_bottom="8px",
            ),
            rx.table.root(
                rx.table.header(
                    rx.table.row(
                        rx.table.column_header_cell("Setting", scope="col"),
                        rx.foreach(
                            S.run_links,
                            lambda r: rx.table.column_header_cell(
                                rx.link(r["label"], href=r["href"]), scope="col"
                            ),
                        ),
                    )
                ),
                rx.table.body(rx.foreach(S.shown_hp_rows, hp_row)),
                id="hp-table",
                width="100%",
                variant="surface",
                size="1",
            ),
            title="Hyperparameters (differences highlighted)",
            overflow_x="auto",
        ),
        card(
            figure_box(
                S.parallel,
                "parallel-chart",
                "Parallel coordinates of varying hyperparameters and the final metric",
            ),
            title="Parallel coordinates",
        ),
        spacing="5",
        align="stretch",
        width="100%",
        id="compare-results",
    )


def figure_box(figure: rx.Var, box_id: str, label: str, **props: Any) -> rx.Component:
    """A Plotly chart in a labelled figure box (screen readers hear what it shows)."""
    return rx.box(
        rx.plotly(data=figure, config={"displaylogo": False, "responsive": True}, width="100%"),
        id=box_id,
        role="figure",
        aria_label=label,
        **props,
    )


def no_results() -> rx.Component:
    """The empty state: the chart says what to do. Drawing it also fetches the charting library
    (several MB, loaded on first use) while the user picks runs, so "Compare" draws at once."""
    return card(
        figure_box(
            S.curves_figure, "compare-empty", "No runs compared yet: tick two or more runs, then Compare"
        ),
        title="Curves",
    )


def compare_page() -> rx.Component:
    return page_shell(
        rx.link("← Jobs", href="/projects/" + S.project_id.to_string() + "/jobs", color=tokens.PRIMARY),
        rx.cond(
            S.load_error != "",
            rx.callout(
                S.load_error, icon="triangle_alert", color_scheme="red", role="alert", id="compare-error"
            ),
        ),
        picker(),
        rx.cond(S.run_labels.length() > 0, results(), no_results()),
        title="Compare runs",
        username=S.username,
        avatar_name=S.avatar_name,
        badge_color=S.badge_color,
        on_sign_out=S.sign_out,
    )
