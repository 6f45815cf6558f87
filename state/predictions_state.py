"""/projects/[project_id]/predictions?jobs=1,2: several models' predictions on the same images.

The server judges each job's stored predictions once and sends one page of images: thumbnail
URLs and boxes in percent, drawn over the thumbnails with CSS (`components/prediction_grid.py`).
Pure shaping helpers sit outside the state class.
"""

from __future__ import annotations

import asyncio
from typing import Any

import reflex as rx

from components import tokens
from services.actions import predictions
from services.actions.core import optional_web_actor
from services.errors import DomainError
from state.auth_state import AuthState, login_redirect
from state.page_helpers import project_from_path

PREDICTIONS_ROUTE = "/projects/[project_id]/predictions"
PAGE_SIZE = 12
KIND_STYLES = {"tp": "solid", "fp": "solid", "missed": "dashed", "truth": "solid"}


def parse_job_ids(raw: str) -> list[int]:
    """`?jobs=3,4,7` -> [3, 4, 7]; anything that is not a positive whole number is dropped."""
    return [int(p) for p in raw.split(",") if p.strip().isdigit() and 0 < int(p) < 2**63][:8]


def box_rows(boxes: list[predictions.Overlay]) -> list[dict[str, str]]:
    """Overlays as the CSS the page draws (strings: Reflex renders them as they are)."""
    return [
        {
            "left": f"{b.left}%",
            "top": f"{b.top}%",
            "width": f"{b.width}%",
            "height": f"{b.height}%",
            "border": f"2px {KIND_STYLES[b.kind]} {tokens.VERDICT[b.kind]}",
            "kind": b.kind,
            "label": b.label,
        }
        for b in boxes
    ]


def page_rows(page: predictions.PredictionPage) -> list[dict[str, Any]]:
    """One row per image: the ground truth first, then each model, as the grid draws them."""
    names = {int(j["id"]): f"#{j['id']} {j['name']}" for j in page.jobs}
    rows = []
    for row in page.rows:
        cells = [
            {
                "title": "Ground truth",
                "caption": row.truth_caption,
                "boxes": box_rows(row.truth),
                "verdict": "truth",
            }
        ]
        cells += [
            {
                "title": names.get(m.job_id, f"#{m.job_id}"),
                "caption": m.caption,
                "boxes": box_rows(m.boxes),
                "verdict": "wrong" if m.wrong else "right",
            }
            for m in row.models
        ]
        rows.append({"path": row.path, "src": row.thumbnail_url, "cells": cells})
    return rows


def load_page(
    token: str, project_id: int, job_ids: list[int], split: str, filters: dict[str, Any], offset: int
) -> dict[str, Any]:
    """One page of compared predictions (blocking; run in a thread)."""
    actor = optional_web_actor(token)
    if actor is None:
        return {"signed_in": False}
    wrong_in = str(filters.get("wrong_in") or "")
    page = predictions.compare(
        actor,
        project_id=project_id,
        job_ids=job_ids,
        split=split,
        disagree=bool(filters.get("disagree")),
        class_name=str(filters.get("class_name") or ""),
        wrong_in=int(wrong_in) if wrong_in.isdigit() else None,
        offset=offset,
        limit=PAGE_SIZE,
    )
    return {
        "signed_in": True,
        "task": page.task,
        "classes": page.classes,
        "jobs": [{"id": str(j["id"]), "name": f"#{j['id']} {j['name']}"} for j in page.jobs],
        "total": page.total,
        "stored": page.stored,
        "rows": page_rows(page),
    }


class PredictionsState(AuthState):
    project_id: int = 0
    job_ids: list[int] = []
    split: str = "val"
    disagree: bool = False
    class_name: str = ""
    wrong_in: str = ""  # a job id, or "" for any
    offset: int = 0
    task: str = ""
    classes: list[str] = []
    jobs: list[dict[str, str]] = []
    rows: list[dict[str, Any]] = []
    total: int = 0
    stored: int = 0
    error: str = ""
    loading: bool = False
    _asked: int = 0  # fetch requests so far; a read whose count went stale reads again

    @rx.var
    def page_label(self) -> str:
        if not self.total:
            return f"No images match · {self.stored} with predictions"
        last = min(self.offset + PAGE_SIZE, self.total)
        return f"Images {self.offset + 1}–{last} of {self.total} · {self.stored} with predictions"

    @rx.var
    def has_previous(self) -> bool:
        return self.offset > 0

    @rx.var
    def has_next(self) -> bool:
        return self.offset + PAGE_SIZE < self.total

    @rx.event
    async def load(self):
        if self._refresh_user() is None:
            return login_redirect(self.router.url.path)
        project_id = project_from_path(self.router.url.path)
        query = self.router.url.query_parameters
        self.project_id = project_id or 0
        self.job_ids = parse_job_ids(str(query.get("jobs", "")))
        self.split = "test" if query.get("split") == "test" else "val"
        self.disagree, self.class_name, self.wrong_in, self.offset = False, "", "", 0
        self.rows, self.error = [], ""
        if project_id is None:
            self.error = "This is not a project address."
            return
        return PredictionsState.fetch

    @rx.event(background=True)
    async def fetch(self):
        """Read the page the filters ask for; a filter changed mid-read is read again.

        One read runs at a time. A request that arrives while one runs bumps `_asked`, and the
        running read starts over with the newest filters instead of showing what was asked
        before (a filter clicked during a slow read used to be dropped).
        """
        async with self:
            self._asked += 1
            if self.loading or not self.project_id:
                return
            self.loading = True
        try:
            while True:
                async with self:
                    asked = self._asked
                    token, project_id, ids, split = (
                        self.token,
                        self.project_id,
                        list(self.job_ids),
                        self.split,
                    )
                    filters = {
                        "disagree": self.disagree,
                        "class_name": self.class_name,
                        "wrong_in": self.wrong_in,
                    }
                    offset = self.offset
                try:
                    data = await asyncio.to_thread(load_page, token, project_id, ids, split, filters, offset)
                except DomainError as exc:
                    async with self:
                        if self._asked != asked:
                            continue
                        self.error, self.rows, self.total = exc.message, [], 0
                    return
                async with self:
                    if self._asked != asked:
                        continue
                    if not data["signed_in"]:
                        return
                    self.error = ""
                    self.task, self.classes, self.jobs = data["task"], data["classes"], data["jobs"]
                    self.rows, self.total, self.stored = data["rows"], data["total"], data["stored"]
                    return
        finally:
            async with self:
                self.loading = False

    @rx.event
    def set_disagree(self, value: bool):
        self.disagree, self.offset = bool(value), 0
        return PredictionsState.fetch

    @rx.event
    def set_class_name(self, value: str):
        self.class_name, self.offset = ("" if value == "any" else value), 0
        return PredictionsState.fetch

    @rx.event
    def set_wrong_in(self, value: str):
        self.wrong_in, self.offset = ("" if value == "any" else value), 0
        return PredictionsState.fetch

    @rx.event
    def set_split(self, value: str):
        self.split, self.offset = ("test" if value == "test" else "val"), 0
        return PredictionsState.fetch

    @rx.event
    def next_page(self):
        if self.offset + PAGE_SIZE < self.total:
            self.offset += PAGE_SIZE
            return PredictionsState.fetch

    @rx.event
    def previous_page(self):
        if self.offset > 0:
            self.offset = max(0, self.offset - PAGE_SIZE)
            return PredictionsState.fetch
