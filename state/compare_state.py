"""/projects/[project_id]/compare: pick runs, overlay curves, hyperparameter and metric tables."""

from __future__ import annotations

import asyncio
from typing import Any

import plotly.graph_objects as go
import reflex as rx

from components.experiment_card import ExperimentCardData, experiment_card_data
from components.training_charts import compare_figure, empty_figure, parallel_figure
from services.actions import experiments as runs_actions
from services.actions import overview
from services.actions.core import optional_web_actor
from services.domain import experiments
from services.errors import DomainError
from state.auth_state import AuthState, login_redirect
from state.formatting import format_time
from state.page_helpers import project_from_path

COMPARE_ROUTE = "/projects/[project_id]/compare"
PAGE_SIZE = 25


def load_runs(token: str, project_id: int, search: str, state: str) -> dict[str, Any]:
    actor = optional_web_actor(token)
    if actor is None:
        return {"signed_in": False}
    runs = runs_actions.runs(actor, project_id=project_id, search=search, states=[state] if state else None)
    rows = [
        {
            "id": str(r["id"]),
            "name": r["name"],
            "state": r["state"],
            "model": r["model"].removesuffix(".yaml"),
            "owner": r["owner"],
            "created": format_time(r["created_at"]),
        }
        for r in runs
    ]
    return {"signed_in": True, "rows": rows}


def load_comparison(token: str, project_id: int, ids: list[int]) -> dict[str, Any]:
    """All chosen runs' metrics in two queries (services.domain.experiments.compare_runs)."""
    actor = optional_web_actor(token)
    if actor is None:
        return {"signed_in": False}
    found = runs_actions.compare(actor, project_id=project_id, job_ids=ids)
    final = experiments.final_metrics(found.curves)
    for run in found.runs:
        run["final"] = final.get(run["id"], {})
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
    runs: list[dict[str, str]] = []
    page: int = 0
    selected: list[str] = []
    metrics: list[str] = []
    metric: str = ""
    sort_key: str = ""
    sort_desc: bool = True
    hp_rows: list[dict[str, Any]] = []
    run_labels: list[str] = []
    run_cards: list[ExperimentCardData] = []
    metric_rows: list[dict[str, Any]] = []
    curves_figure: go.Figure = empty_figure("Pick two or more runs to compare")
    parallel: go.Figure = empty_figure("Pick runs to compare")
    load_error: str = ""
    comparing: bool = False
    _data: dict[str, Any] = {}

    @rx.var
    def page_rows(self) -> list[dict[str, str]]:
        start = self.page * PAGE_SIZE
        return self.runs[start : start + PAGE_SIZE]

    @rx.var
    def page_label(self) -> str:
        pages = max(1, -(-len(self.runs) // PAGE_SIZE))
        return f"Page {self.page + 1} of {pages} · {len(self.runs)} runs · {len(self.selected)} selected"

    @rx.var
    def last_page(self) -> bool:
        return (self.page + 1) * PAGE_SIZE >= len(self.runs)

    async def _load_runs(self) -> Any:
        async with self:
            token, project_id, search, state = self.token, self.project_id, self.search, self.state_filter
            path = self.router.url.path
        try:
            found = await asyncio.to_thread(load_runs, token, project_id, search, state)
        except DomainError as exc:
            async with self:
                self.load_error = exc.message
            return None
        async with self:
            if not found["signed_in"]:
                self._remember(None)
                return login_redirect(path)
            self.runs, self.load_error = found["rows"], ""
            self.page = min(self.page, max(0, (len(self.runs) - 1) // PAGE_SIZE))
        return None

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
                self.run_labels, self.run_cards = [], []
                self.curves_figure = empty_figure("Pick two or more runs to compare")
                self.parallel = empty_figure("Pick runs to compare")
            self.project_id = project_id
            self._refresh_user()
        return await self._load_runs()

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

    @rx.event
    def next_page(self):
        if not self.last_page:
            self.page += 1

    @rx.event
    def previous_page(self):
        self.page = max(0, self.page - 1)

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
            if self.metric not in self.metrics:
                self.metric = self.metrics[0] if self.metrics else ""
            if self.sort_key not in self.metrics:
                self.sort_key = self.metric
            runs = data["runs"]
            self.run_labels = [f"#{r['id']} {r['name']}" for r in runs]
            self.run_cards = data["cards"]
            self.hp_rows = experiments.hyperparameter_rows(runs)
            self._redraw()

    def _redraw(self) -> None:
        runs = self._data.get("runs") or []
        curves = self._data.get("curves") or {}
        labels = {str(r["id"]): f"#{r['id']} {r['name']}" for r in runs}
        self.curves_figure = compare_figure({str(k): v for k, v in curves.items()}, labels, self.metric)
        varying = [r["name"] for r in experiments.hyperparameter_rows(runs) if r["differs"]]
        self.parallel = parallel_figure(runs, varying, self.metric)
        rows = experiments.sort_rows(
            metric_table(runs, self.metrics), self.sort_key, descending=self.sort_desc
        )
        self.metric_rows = format_metric_rows(rows, self.metrics)

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
