"""/projects/[project_id]/compare: pick runs, overlay curves, hyperparameter and metric tables."""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import urlencode

import plotly.graph_objects as go
import reflex as rx

from components.experiment_card import ExperimentCardData, experiment_card_data
from components.training_charts import compare_figure, empty_figure, parallel_figure
from services.actions import experiments as runs_actions
from services.actions import overview
from services.actions.core import optional_web_actor, web_actor
from services.domain import experiments
from services.domain.schemas import SavedComparisonCreate
from services.errors import DomainError
from state.auth_state import AuthState, login_redirect
from state.formatting import format_time
from state.page_helpers import project_from_path

COMPARE_ROUTE = "/projects/[project_id]/compare"
QUERY_HELP = experiments.QUERY_HELP  # the filter box's syntax, shown under it
PAGE_SIZE = 25


def load_runs(
    token: str, project_id: int, search: str, state: str, page: int = 0, sort: str = "newest"
) -> dict[str, Any]:
    """One page of runs (the database filters, sorts and pages: thousands of runs stay quick)."""
    actor = optional_web_actor(token)
    if actor is None:
        return {"signed_in": False}
    runs, total = runs_actions.runs(
        actor,
        project_id=project_id,
        search=search,
        states=[state] if state else None,
        offset=page * PAGE_SIZE,
        limit=PAGE_SIZE,
        sort=sort,
    )
    rows = [
        {
            "id": str(r["id"]),
            "name": r["name"],
            "state": r["state"],
            "model": r["model"].removesuffix(".yaml"),
            "owner": r["owner"],
            "created": format_time(r["created_at"]),
            "tags": " ".join(f"#{t}" for t in r.get("tags", [])),
        }
        for r in runs
    ]
    return {"signed_in": True, "rows": rows, "total": total}


def load_comparison(token: str, project_id: int, ids: list[int]) -> dict[str, Any]:
    """All chosen runs' metrics in two queries (services.domain.experiments.compare_runs)."""
    actor = optional_web_actor(token)
    if actor is None:
        return {"signed_in": False}
    found = runs_actions.compare(actor, project_id=project_id, job_ids=ids)
    final = experiments.final_metrics(found.curves)
    for run in found.runs:
        # The last epoch's validation figures, then best.pt's test figures (`test/<metric>`).
        run["final"] = {**final.get(run["id"], {}), **run.get("test_metrics", {})}
    ids = [int(r["id"]) for r in found.runs]
    contexts = overview.run_contexts(actor, project_id=project_id, job_ids=ids)
    cards = []
    for run in found.runs:
        context = contexts.get(int(run["id"]))
        extra = (
            {
                "dataset": context.dataset,
                "owner_avatar": context.owner.avatar_name,
                "owner_color": context.owner.badge_color,
            }
            if context
            else {}
        )
        cards.append(experiment_card_data(run, **extra))
    return {"signed_in": True, "runs": found.runs, "curves": found.curves, "final": final, "cards": cards}


def view_path(project_id: int, comparison_id: int) -> str:
    return f"/projects/{project_id}/compare?view={comparison_id}"


def metric_table(runs: list[dict[str, Any]], metrics: list[str]) -> list[dict[str, Any]]:
    return [{"id": str(r["id"]), "name": r["name"], **{m: r["final"].get(m) for m in metrics}} for r in runs]


def format_metric_rows(rows: list[dict[str, Any]], metrics: list[str]) -> list[dict[str, Any]]:
    return [
        {
            "id": r["id"],
            "name": r["name"],
            "cells": [("—" if r.get(m) is None else f"{r[m]:.4f}") for m in metrics],
        }
        for r in rows
    ]


class CompareState(AuthState):
    project_id: int = 0
    search: str = ""
    state_filter: str = ""
    runs: list[dict[str, str]] = []  # the current page only
    total_runs: int = 0
    run_sort: str = "newest"
    page: int = 0
    selected: list[str] = []
    metrics: list[str] = []
    table_metrics: list[str] = []  # `metrics`, then the test split's (`test/<metric>`)
    metric: str = ""
    sort_key: str = ""
    sort_desc: bool = True
    hp_rows: list[dict[str, Any]] = []
    only_differences: bool = True
    view_name: str = ""
    view_message: str = ""
    run_labels: list[str] = []
    # Column heads of the settings table link to each run's page: a way into a run from its
    # settings, and the table's keyboard stop when it scrolls sideways.
    run_links: list[dict[str, str]] = []
    run_cards: list[ExperimentCardData] = []
    metric_rows: list[dict[str, Any]] = []
    curves_figure: go.Figure = empty_figure("Pick two or more runs to compare")
    parallel: go.Figure = empty_figure("Pick runs to compare")
    load_error: str = ""
    comparing: bool = False
    _data: dict[str, Any] = {}
    # Reads overlap (typing in the search box fires one per keystroke): only the newest is shown.
    _read_seq: int = 0

    @rx.var
    def shown_hp_rows(self) -> list[dict[str, Any]]:
        """The hyperparameter table; by default only the parameters whose values differ."""
        return [r for r in self.hp_rows if r.get("differs")] if self.only_differences else self.hp_rows

    @rx.var
    def hidden_hp_count(self) -> int:
        return len(self.hp_rows) - len(self.shown_hp_rows)

    @rx.event
    def set_only_differences(self, value: bool):
        self.only_differences = bool(value)

    @rx.event
    def set_view_name(self, value: str):
        self.view_name = value[:120]

    @rx.event(background=True)
    async def save_view(self):
        """Save the selection and view under a name; the page's URL with ?view= opens it for members."""
        async with self:
            token, project_id = self.token, self.project_id
            request = (
                SavedComparisonCreate(
                    name=self.view_name.strip() or f"{len(self.selected)} runs",
                    job_ids=[int(i) for i in self.selected],
                    metric=self.metric,
                    only_differences=self.only_differences,
                )
                if self.selected
                else None
            )
            if request is None:
                self.view_message = "Pick runs to compare first."
                return
        try:
            actor = await asyncio.to_thread(web_actor, token)
            saved = await asyncio.to_thread(
                runs_actions.save_comparison, actor, project_id=project_id, request=request
            )
        except DomainError as exc:
            async with self:
                self.view_message = exc.message
            return
        async with self:
            self.view_message = f"Saved as \u201c{saved.name}\u201d: share {view_path(project_id, saved.id)}"

    @rx.event(background=True)
    async def download_csv(self):
        """Every epoch of the compared runs, all metrics (the chart shows them downsampled)."""
        async with self:
            token, project_id, ids = self.token, self.project_id, [int(i) for i in self.selected]
        try:
            actor = await asyncio.to_thread(web_actor, token)
            body = await asyncio.to_thread(runs_actions.curves_csv, actor, project_id=project_id, job_ids=ids)
        except DomainError as exc:
            async with self:
                self.view_message = exc.message
            return
        return rx.download(data=body, filename=f"project-{project_id}-runs.csv")

    @rx.var
    def predictions_href(self) -> str:
        """The prediction comparison of the selected runs (2 to 4 of one dataset version)."""
        return f"/projects/{self.project_id}/predictions?jobs={','.join(self.selected)}"

    @rx.var
    def can_compare_predictions(self) -> bool:
        return 2 <= len(self.selected) <= 4

    @rx.var
    def page_rows(self) -> list[dict[str, str]]:
        return self.runs

    @rx.var
    def page_label(self) -> str:
        pages = max(1, -(-self.total_runs // PAGE_SIZE))
        return f"Page {self.page + 1} of {pages} · {self.total_runs} runs · {len(self.selected)} selected"

    @rx.var
    def last_page(self) -> bool:
        return (self.page + 1) * PAGE_SIZE >= self.total_runs

    async def _load_runs(self) -> Any:
        async with self:
            token, project_id, search, state = self.token, self.project_id, self.search, self.state_filter
            page, sort = self.page, self.run_sort
            # A shared view's address keeps its ?view= through the sign-in page.
            query = urlencode(dict(self.router.url.query_parameters))
            path = self.router.url.path + (f"?{query}" if query else "")
            self._read_seq += 1
            seq = self._read_seq
        try:
            found = await asyncio.to_thread(load_runs, token, project_id, search, state, page, sort)
        except DomainError as exc:
            async with self:
                self.load_error = exc.message
            return None
        async with self:
            if seq != self._read_seq:  # a newer read (another keystroke, filter or page) is coming
                return None
            if not found["signed_in"]:
                self._remember(None)
                return login_redirect(path)
            self.runs, self.total_runs, self.load_error = found["rows"], found["total"], ""
            last = max(0, (self.total_runs - 1) // PAGE_SIZE)
            if self.page > last:  # the filter shrank the list under the current page
                self.page = last
                return CompareState.reload_runs
        return None

    @rx.event(background=True)
    async def reload_runs(self):
        return await self._load_runs()

    @rx.event(background=True)
    async def set_run_sort(self, value: str):
        async with self:
            self.run_sort, self.page = value, 0
        return await self._load_runs()

    @rx.event(background=True)
    async def load(self):
        async with self:
            project_id = project_from_path(self.router.url.path)
            if project_id is None:
                self.load_error = "This is not a project address."
                return
            if project_id != self.project_id:
                self.selected, self.page, self._data = [], 0, {}
                self.hp_rows, self.metric_rows, self.metrics = [], [], []
                self.table_metrics = []
                self.run_labels, self.run_cards, self.run_links = [], [], []
                self.curves_figure = empty_figure("Pick two or more runs to compare")
                self.parallel = empty_figure("Pick runs to compare")
            self.project_id = project_id
            self._refresh_user()
            token = self.token
            view = str(self.router.url.query_parameters.get("view", ""))
        redirect = await self._load_runs()
        if redirect is not None or not view.isdigit():
            return redirect
        try:
            actor = await asyncio.to_thread(web_actor, token)
            saved = await asyncio.to_thread(
                runs_actions.get_comparison, actor, project_id=project_id, comparison_id=int(view)
            )
        except DomainError as exc:
            async with self:
                self.load_error = exc.message
            return None
        async with self:
            self.selected = [str(i) for i in saved.job_ids]
            self.metric, self.only_differences = saved.metric, saved.only_differences
            self.view_name, self.view_message = saved.name, f"Saved comparison \u201c{saved.name}\u201d"
        return CompareState.compare

    @rx.event(background=True)
    async def set_search(self, value: str):
        async with self:
            self.search, self.page = value, 0
        return await self._load_runs()

    @rx.event(background=True)
    async def set_state_filter(self, value: str):
        async with self:
            self.state_filter, self.page = value, 0
        return await self._load_runs()

    @rx.event(background=True)
    async def next_page(self):
        async with self:
            if self.last_page:
                return
            self.page += 1
        return await self._load_runs()

    @rx.event(background=True)
    async def previous_page(self):
        async with self:
            if self.page == 0:
                return
            self.page -= 1
        return await self._load_runs()

    @rx.event
    def toggle(self, run_id: str):
        if run_id in self.selected:
            self.selected = [r for r in self.selected if r != run_id]
        else:
            self.selected = [*self.selected, run_id]

    @rx.event
    def select_page(self):
        on_page = [r["id"] for r in self.page_rows]
        self.selected = [*self.selected, *[r for r in on_page if r not in self.selected]]

    @rx.event
    def clear_selection(self):
        self.selected = []

    @rx.event(background=True)
    async def compare(self):
        async with self:
            if self.comparing:
                return
            self.comparing = True
            token, project_id, ids = self.token, self.project_id, [int(i) for i in self.selected]
        try:
            data = await asyncio.to_thread(load_comparison, token, project_id, ids)
        except DomainError as exc:
            async with self:
                self.load_error, self.comparing = exc.message, False
            return
        async with self:
            self.comparing = False
            if not data["signed_in"]:
                return
            self._data = data
            self.metrics = experiments.metric_names(data["curves"])
            tested = sorted({k for r in data["runs"] for k in r.get("test_metrics", {})})
            self.table_metrics = self.metrics + tested
            if self.metric not in self.metrics:
                self.metric = self.metrics[0] if self.metrics else ""
            if self.sort_key not in self.table_metrics:
                self.sort_key = self.metric
            runs = data["runs"]
            self.run_labels = [f"#{r['id']} {r['name']}" for r in runs]
            self.run_links = [{"label": f"#{r['id']} {r['name']}", "href": f"/jobs/{r['id']}"} for r in runs]
            self.run_cards = data["cards"]
            self.hp_rows = experiments.hyperparameter_rows(runs)
            self._redraw()

    def _redraw(self) -> None:
        runs = self._data.get("runs") or []
        curves = self._data.get("curves") or {}
        labels = {str(r["id"]): f"#{r['id']} {r['name']}" for r in runs}
        # The browser gets at most CHART_POINTS points per run (LTTB keeps peaks and dips); the
        # full curves stay on the server and download as CSV.
        shown = {}
        for run_id, rows in curves.items():
            xs, ys = experiments.chart_series(rows, self.metric)
            shown[str(run_id)] = [{"epoch": x, self.metric: y} for x, y in zip(xs, ys, strict=True)]
        self.curves_figure = compare_figure(shown, labels, self.metric)
        varying = [r["name"] for r in experiments.hyperparameter_rows(runs) if r["differs"]]
        self.parallel = parallel_figure(runs, varying, self.metric)
        rows = experiments.sort_rows(
            metric_table(runs, self.table_metrics), self.sort_key, descending=self.sort_desc
        )
        self.metric_rows = format_metric_rows(rows, self.table_metrics)

    @rx.event
    def set_metric(self, value: str):
        self.metric = value
        self._redraw()

    @rx.event
    def sort_by(self, key: str):
        if key == self.sort_key:
            self.sort_desc = not self.sort_desc
        else:
            self.sort_key, self.sort_desc = key, True
        self._redraw()
