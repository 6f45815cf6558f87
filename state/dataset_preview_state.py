"""Thumbnail strips of a project's datasets (the datasets list's DatasetPreview cards).

Its own state, loaded in the background after the list shows: the previews read images from
S3, and the table of datasets should not wait for them.
"""

from __future__ import annotations

import asyncio

import reflex as rx

from components.dataset_preview import DatasetPreviewData, PreviewThumb
from services.actions import overview
from services.actions.core import web_actor
from services.domain.overview import DatasetPreview
from services.errors import DomainError
from state.auth_state import AuthState
from state.page_helpers import data_uri, plural, project_from_path


def preview_data(project_id: int, preview: DatasetPreview) -> DatasetPreviewData:
    shown = ", ".join(preview.classes[:6]) + ("…" if len(preview.classes) > 6 else "")
    return DatasetPreviewData(
        id=str(preview.dataset_id),
        name=preview.name,
        version=f"v{preview.version}",
        href=f"/projects/{project_id}/datasets/{preview.dataset_id}",
        images=plural(preview.num_images, "image"),
        classes=plural(len(preview.classes), "class") + (f": {shown}" if shown else ""),
        task=preview.task,
        thumbs=[PreviewThumb(src=data_uri(i.jpeg), alt=f"{i.path}: {i.caption}") for i in preview.images],
    )


def read_previews(token: str, project_id: int) -> list[DatasetPreviewData]:
    """Blocking (S3 reads): run in a thread."""
    found = overview.dataset_previews(web_actor(token), project_id=project_id)
    return [preview_data(project_id, p) for p in found]


class DatasetPreviewState(AuthState):
    previews: list[DatasetPreviewData] = []
    previews_for: int = 0
    previews_message: str = ""  # why there is nothing to show, once the load has ended

    @rx.event(background=True)
    async def load_previews(self):
        async with self:
            project_id = project_from_path(self.router.url.path)
            if project_id != self.previews_for:
                self.previews, self.previews_message = [], ""
            token = self.token
        if project_id is None:
            return
        try:
            previews = await asyncio.to_thread(read_previews, token, project_id)
        except DomainError as exc:
            async with self:
                self.previews_message = f"No previews: {exc.message}"
            return
        async with self:
            self.previews, self.previews_for = previews, project_id
            self.previews_message = "" if previews else "No datasets to preview."
