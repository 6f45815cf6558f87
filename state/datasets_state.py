"""Datasets pages: `/projects/[project_id]/datasets` (list + upload with progress) and
`/projects/[project_id]/datasets/[dataset_id]` (versions, split dialog, statistics, gallery).

Handlers read the page's state, resolve the actor from the page token (`web_actor`, in a thread),
call `services.actions.datasets` (which authorizes, audits and commits, the same functions the
REST API calls) and turn the public results into the rows the page renders (pure helpers below).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from collections.abc import Callable
from typing import Any, TypeVar

import plotly.graph_objects as go
import reflex as rx

from components.dataset_charts import boxes_per_image_figure, class_counts_figure, image_sizes_figure
from services.actions import datasets as actions
from services.actions.core import SessionEnded, web_actor
from services.domain.datasets import DatasetRejected
from services.domain.datasets.schemas import DatasetVersionDetail, GalleryImage, UploadResult
from services.domain.permissions import Action
from services.domain.schemas import DatasetVersionPublic
from services.errors import DomainError, Unauthorized
from state.auth_state import AuthState, error_message, login_redirect
from state.formatting import format_time
from state.page_helpers import (
    data_uri,
    human_bytes,
    parse_ratio,
    plural,
    problem_rows,
    progress_percent,
    project_path_ids,
    role_allows,
    split_text,
)

UPLOAD_ID = "dataset-upload"
GALLERY_PAGE = 12

T = TypeVar("T")


async def _as_web_actor(token: str, action: Callable[..., T], /, **kwargs: Any) -> T:
    """Resolve the page's actor and run one action, both in a thread (they block on the database)."""
    return await asyncio.to_thread(lambda: action(web_actor(token), **kwargs))


def dataset_rows(project_id: int, found: list[DatasetVersionPublic]) -> list[dict[str, str]]:
    """The dataset list's table rows (latest version of each dataset)."""
    return [
        {
            "id": str(v.dataset_id),
            "name": v.name,
            "version": f"v{v.version}",
            "format": f"{v.format} · {v.task}",
            "images": str(v.num_images),
            "classes": str(len(v.classes)),
            "splits": split_text(v.split_counts),
            "size": human_bytes(v.size_bytes),
            "created": format_time(v.created_at),
            "href": f"/projects/{project_id}/datasets/{v.dataset_id}",
        }
        for v in found
    ]


def version_rows(found: list[DatasetVersionDetail]) -> list[dict[str, str]]:
    """The versions table's rows, newest first."""
    return [
        {
            "version": str(v.version),
            "label": f"v{v.version}",
            "images": str(v.num_images),
            "labels": str(v.num_labels),
            "splits": split_text(v.split_counts),
            "note": v.note or ("uploaded" if v.split_method == "upload" else ""),
            "created": format_time(v.created_at),
        }
        for v in found
    ]


def gallery_tiles(items: list[GalleryImage], pictures: list[bytes]) -> list[dict[str, str]]:
    """Gallery tiles with their thumbnails inline as data URIs."""
    return [
        {
            "index": str(i.index),
            "path": i.path,
            "name": i.path.rsplit("/", 1)[-1],
            "split": i.split,
            "size": f"{i.width}×{i.height}",
            "classes": ", ".join(i.classes) or "no objects",
            "objects": plural(i.num_objects, "object"),
            "src": data_uri(picture),
        }
        for i, picture in zip(items, pictures, strict=True)
    ]


def stats_sentence(stats: dict[str, Any]) -> str:
    """One sentence over a version's statistics, above its charts."""
    width, height = stats.get("width") or {}, stats.get("height") or {}
    return (
        f"{plural(int(stats.get('num_images', 0)), 'image')}, "
        f"{plural(len(stats.get('classes') or []), 'class')}, "
        f"{stats.get('background_images', 0)} without objects; width "
        f"{width.get('min', 0):g}–{width.get('max', 0):g}px, height "
        f"{height.get('min', 0):g}–{height.get('max', 0):g}px"
    )


def upload_message(result: UploadResult) -> str:
    """What the upload panel says once a version is stored."""
    warnings = len(result.report.warnings)
    stored = f"Stored version {result.version} with {plural(result.num_images, 'image')}"
    return stored + (f" and {plural(warnings, 'warning')} (below)." if warnings else "; no problems found.")


def _ingest(token: str, project_id: int, path: str, filename: str, name: str) -> UploadResult:
    """Validate and store the upload the browser sent (kept on disk at `path`) as a new dataset."""
    actor = web_actor(token)
    with open(path, "rb") as fileobj:
        return actions.upload_dataset(
            actor, project_id=project_id, fileobj=fileobj, filename=filename, name=name
        )


class DatasetsState(AuthState):
    """The dataset list of one project and the upload panel."""

    ds_project_id: int = 0
    ds_project_name: str = ""
    ds_role: str = ""
    ds_rows: list[dict[str, str]] = []
    ds_loading: bool = True
    ds_error: str = ""

    upload_name: str = ""
    upload_phase: str = ""  # "", uploading, validating, done, rejected, failed, cancelled
    upload_loaded: int = 0
    upload_total: int = 0
    upload_message: str = ""
    upload_href: str = ""
    report_rows: list[dict[str, str]] = []
    _pending_upload: str = ""
    _pending_filename: str = ""

    @rx.var
    def can_upload(self) -> bool:
        return role_allows(self.ds_role, Action.dataset_write)

    @rx.var
    def upload_percent(self) -> int:
        return (
            100
            if self.upload_phase in ("validating", "done", "rejected")
            else progress_percent(self.upload_loaded, self.upload_total)
        )

    @rx.var
    def upload_bytes_text(self) -> str:
        return f"{human_bytes(self.upload_loaded)} of {human_bytes(self.upload_total)}"

    @rx.var
    def upload_busy(self) -> bool:
        return self.upload_phase in ("uploading", "validating")

    @rx.event(background=True)
    async def load(self):
        async with self:
            project_id, _ = project_path_ids(self.router.url.path)
            self.ds_loading, self.ds_error = True, ""
            if project_id != self.ds_project_id:
                self.ds_rows, self.ds_role, self.ds_project_name = [], "", ""
                self.upload_phase, self.report_rows, self.upload_message = "", [], ""
            self.ds_project_id = project_id or 0
            actor = self._refresh_user()
        if not project_id:
            async with self:
                self.ds_loading, self.ds_error = False, "This address does not name a project."
            return
        try:
            if actor is None:
                raise SessionEnded()
            found = await asyncio.to_thread(actions.list_datasets, actor, project_id=project_id)
        except Unauthorized:
            async with self:
                self.ds_loading = False
                return login_redirect(self.router.url.path)
        except DomainError as exc:
            async with self:
                self.ds_loading, self.ds_error = False, error_message(exc)
            return
        async with self:
            if project_id == self.ds_project_id:
                self.ds_rows, self.ds_role = dataset_rows(project_id, found.datasets), found.role
                self.ds_project_name = found.project_name
            self.ds_loading = False

    @rx.event
    def set_upload_name(self, value: str):
        self.upload_name = value[:120]

    @rx.event
    def upload_progress(self, progress: dict[str, Any]):
        if self.upload_phase not in ("uploading", ""):
            return
        self.upload_phase = "uploading"
        self.upload_loaded = int(progress.get("loaded") or 0)
        self.upload_total = int(progress.get("total") or 0)

    @rx.event
    def start_upload(self):
        """Runs on click before the files are sent: resets the panel."""
        self.upload_phase, self.upload_loaded, self.upload_total = "uploading", 0, 0
        self.upload_message, self.report_rows, self.upload_href = "", [], ""

    @rx.event
    def upload_cancelled(self):
        if self.upload_phase == "uploading":
            self.upload_phase = "cancelled"
            self.upload_message = "Upload cancelled. Nothing was stored; choose a file to try again."

    @rx.event
    async def handle_upload(self, files: list[rx.UploadFile]):
        """The browser sent the zip: check the role, keep the file on disk, validate in the background."""
        if self.upload_phase == "cancelled":
            return
        if not files:
            self.upload_phase, self.upload_message = "failed", "Choose a .zip file first."
            return
        try:
            await _as_web_actor(self.token, actions.check_can_upload, project_id=self.ds_project_id)
        except DomainError as exc:
            self.upload_phase, self.upload_message = "failed", error_message(exc)
            return
        upload = files[0]
        handle, path = tempfile.mkstemp(prefix="vtp-upload-", suffix=".zip")
        with os.fdopen(handle, "wb") as out:
            await asyncio.to_thread(shutil.copyfileobj, upload.file, out)
        self._pending_upload = path
        self._pending_filename = (upload.filename or "upload.zip").rsplit("/", 1)[-1]
        self.upload_loaded = self.upload_total = max(self.upload_total, os.path.getsize(path))
        self.upload_phase = "validating"
        return DatasetsState.process_upload

    @rx.event(background=True)
    async def process_upload(self):
        async with self:
            path, filename = self._pending_upload, self._pending_filename
            self._pending_upload = ""
            token, project_id, name = self.token, self.ds_project_id, self.upload_name.strip()
        if not path:
            return
        try:
            result = await asyncio.to_thread(_ingest, token, project_id, path, filename, name)
        except DatasetRejected as exc:
            async with self:
                self.upload_phase = "rejected"
                self.upload_message = (
                    f"{exc.summary}. Nothing was stored: fix the problems below, then upload again."
                )
                self.report_rows = problem_rows(p.to_dict() for p in exc.problems[:1000])
            return
        except DomainError as exc:
            async with self:
                self.upload_phase, self.upload_message = "failed", error_message(exc)
            return
        finally:
            await asyncio.to_thread(lambda: os.path.exists(path) and os.remove(path))
        async with self:
            self.upload_phase = "done"
            self.upload_href = f"/projects/{project_id}/datasets/{result.dataset_id}"
            self.upload_message = upload_message(result)
            self.report_rows = problem_rows(p.model_dump() for p in result.report.warnings)
            self.upload_name = ""
        return DatasetsState.load


class DatasetDetailState(AuthState):
    """One dataset: its versions, the split dialog, statistics and the gallery of one version."""

    dd_project_id: int = 0
    dd_dataset_id: int = 0
    dd_project_name: str = ""
    dd_name: str = ""
    dd_role: str = ""
    dd_versions: list[dict[str, str]] = []
    dd_version: str = ""
    dd_loading: bool = True
    dd_error: str = ""

    stats_loading: bool = False
    stats_error: str = ""
    stats_summary: str = ""
    class_options: list[str] = []
    class_figure: go.Figure = go.Figure()
    sizes_figure: go.Figure = go.Figure()
    boxes_figure: go.Figure = go.Figure()
    has_boxes: bool = False

    gallery_items: list[dict[str, str]] = []
    gallery_count: int = 0
    gallery_offset: int = 0
    gallery_split: str = ""
    gallery_class: str = ""
    gallery_loading: bool = False
    gallery_error: str = ""
    viewer_open: bool = False
    viewer_src: str = ""
    viewer_title: str = ""
    viewer_loading: bool = False

    split_open: bool = False
    split_error: str = ""
    splitting: bool = False
    split_notice: str = ""

    @rx.var
    def can_split(self) -> bool:
        return role_allows(self.dd_role, Action.dataset_write)

    @rx.var
    def gallery_range(self) -> str:
        if not self.gallery_count:
            return "No images"
        end = min(self.gallery_offset + GALLERY_PAGE, self.gallery_count)
        return f"Images {self.gallery_offset + 1}–{end} of {self.gallery_count}"

    @rx.var
    def has_previous(self) -> bool:
        return self.gallery_offset > 0

    @rx.var
    def has_next(self) -> bool:
        return self.gallery_offset + GALLERY_PAGE < self.gallery_count

    @rx.event(background=True)
    async def load(self):
        async with self:
            project_id, dataset_id = project_path_ids(self.router.url.path)
            if (project_id, dataset_id) != (self.dd_project_id, self.dd_dataset_id):
                self.dd_versions, self.dd_version, self.dd_name, self.dd_role = [], "", "", ""
                self.gallery_items, self.gallery_count, self.split_notice = [], 0, ""
            self.dd_project_id, self.dd_dataset_id = project_id or 0, dataset_id or 0
            self.dd_loading, self.dd_error = True, ""
            actor = self._refresh_user()
        if not project_id or not dataset_id:
            async with self:
                self.dd_loading, self.dd_error = False, "This address does not name a dataset."
            return
        try:
            if actor is None:
                raise SessionEnded()
            found = await asyncio.to_thread(
                actions.list_versions, actor, project_id=project_id, dataset_id=dataset_id
            )
        except Unauthorized:
            async with self:
                self.dd_loading = False
                return login_redirect(self.router.url.path)
        except DomainError as exc:
            async with self:
                self.dd_loading = False
                self.dd_error = f"{error_message(exc)}. Check the address, or ask a project admin for access."
            return
        rows = version_rows(found.versions)
        async with self:
            self.dd_role, self.dd_name, self.dd_project_name = found.role, found.name, found.project_name
            self.dd_versions = rows
            if self.dd_version not in {r["version"] for r in rows}:
                self.dd_version = rows[0]["version"] if rows else ""
            self.dd_loading = False
        return DatasetDetailState.refresh_version

    @rx.event
    def select_version(self, version: str):
        if version != self.dd_version and any(r["version"] == version for r in self.dd_versions):
            self.dd_version, self.gallery_offset, self.gallery_class = version, 0, ""
            return DatasetDetailState.refresh_version

    @rx.event(background=True)
    async def refresh_version(self):
        async with self:
            if not self.dd_version:
                return
            self.stats_loading, self.stats_error = True, ""
            token, project_id, dataset_id = self.token, self.dd_project_id, self.dd_dataset_id
            version = int(self.dd_version)
        try:
            stats = await _as_web_actor(
                token, actions.version_stats, project_id=project_id, dataset_id=dataset_id, version=version
            )
        except DomainError as exc:
            async with self:
                self.stats_loading, self.stats_error = False, error_message(exc)
            return
        async with self:
            if str(version) == self.dd_version:
                self.class_figure = class_counts_figure(stats)
                self.sizes_figure = image_sizes_figure(stats)
                self.boxes_figure = boxes_per_image_figure(stats)
                self.has_boxes = bool(stats.get("objects_per_image"))
                self.class_options = list(stats.get("classes") or [])
                self.stats_summary = stats_sentence(stats)
            self.stats_loading = False
        return DatasetDetailState.load_gallery

    @rx.event(background=True)
    async def load_gallery(self):
        async with self:
            if not self.dd_version:
                return
            self.gallery_loading, self.gallery_error = True, ""
            token, project_id, dataset_id = self.token, self.dd_project_id, self.dd_dataset_id
            version = int(self.dd_version)
            split, class_name, offset = self.gallery_split, self.gallery_class, self.gallery_offset
        try:
            found = await _as_web_actor(
                token,
                actions.gallery,
                project_id=project_id,
                dataset_id=dataset_id,
                version=version,
                split=split,
                class_name=class_name,
                offset=offset,
                limit=GALLERY_PAGE,
                with_thumbnails=True,
            )
            count, items = found.page.count, gallery_tiles(found.page.data, found.thumbnails)
        except DomainError as exc:
            async with self:
                self.gallery_loading, self.gallery_error = False, error_message(exc)
            return
        async with self:
            if (split, class_name, offset) == (self.gallery_split, self.gallery_class, self.gallery_offset):
                self.gallery_count, self.gallery_items = count, items
            self.gallery_loading = False

    @rx.event
    def filter_split(self, split: str):
        self.gallery_split = split if split in ("train", "val", "test") else ""
        self.gallery_offset = 0
        return DatasetDetailState.load_gallery

    @rx.event
    def filter_class(self, class_name: str):
        self.gallery_class = class_name if class_name in self.class_options else ""
        self.gallery_offset = 0
        return DatasetDetailState.load_gallery

    @rx.event
    def page(self, step: int):
        offset = self.gallery_offset + int(step) * GALLERY_PAGE
        if 0 <= offset < max(self.gallery_count, 1):
            self.gallery_offset = offset
            return DatasetDetailState.load_gallery

    @rx.event(background=True)
    async def open_image(self, index: str, title: str):
        async with self:
            self.viewer_open, self.viewer_loading, self.viewer_src = True, True, ""
            self.viewer_title = title
            token, project_id, dataset_id = self.token, self.dd_project_id, self.dd_dataset_id
            version = int(self.dd_version or 0)
        try:
            preview = await _as_web_actor(
                token,
                actions.image_preview,
                project_id=project_id,
                dataset_id=dataset_id,
                version=version,
                index=int(index),
            )
            src = data_uri(preview)
        except (DomainError, ValueError) as exc:
            async with self:
                self.viewer_loading = False
                self.viewer_title = f"Could not open the image: {error_message(exc)}"
            return
        async with self:
            self.viewer_src, self.viewer_loading = src, False

    @rx.event
    def set_viewer_open(self, value: bool):
        self.viewer_open = value
        if not value:
            self.viewer_src = ""

    @rx.event
    def set_split_open(self, value: bool):
        self.split_open, self.split_error = value, ""

    @rx.event(background=True)
    async def submit_split(self, form: dict[str, Any]):
        async with self:
            if self.splitting:
                return
            self.splitting, self.split_error = True, ""
            token, project_id, dataset_id = self.token, self.dd_project_id, self.dd_dataset_id
            from_version = int(self.dd_version) if self.dd_version else None
        try:
            method = str(form.get("method") or "stratified")
            ratios = {s: parse_ratio(form.get(s), name=s.capitalize()) for s in ("train", "val", "test")}
            seed_text = str(form.get("seed") or "0").strip()
            if not seed_text.lstrip("-").isdigit():
                raise ValueError("Seed must be a whole number")
            made = await _as_web_actor(
                token,
                actions.split,
                project_id=project_id,
                dataset_id=dataset_id,
                ratios=ratios,
                seed=int(seed_text),
                method=method,
                from_version=from_version,
            )
            number = made.version
        except (DomainError, ValueError) as exc:
            async with self:
                self.splitting, self.split_error = False, error_message(exc)
            return
        async with self:
            self.splitting, self.split_open = False, False
            self.dd_version = str(number)
            self.split_notice = f"Created version {number}."
        return DatasetDetailState.load
