"""/projects/[project_id]/jobs: every job of a project, filtered by state, owner and dataset."""

from __future__ import annotations

import asyncio
from typing import Any

import reflex as rx

from services.actions import jobs
from services.actions.core import optional_web_actor
from services.domain.jobs import queue_text
from services.domain.schemas import JobListItem
from services.errors import DomainError
from services.infra import live
from state.auth_state import AuthState, login_redirect
from state.formatting import epoch_progress, format_time
from state.page_helpers import project_from_path
from state.polling import DisconnectTimer, client_connected, next_change, route_id, watch

JOBS_ROUTE = "/projects/[project_id]/jobs"
_JOBS_ROUTE_ID = route_id(JOBS_ROUTE)
STATE_FILTERS = ("queued", "dispatching", "running", "retrying", "succeeded", "failed", "cancelled")


def list_row(job: JobListItem) -> dict[str, str]:
    return {
        "id": str(job.id),
        "name": job.name,
        "state": job.label,  # "pruned" for a sweep trial the pruner stopped
        "owner": job.owner,
        "model": job.model.removesuffix(".yaml"),
        "dataset": "uploaded images" if job.dataset_version_id is None else str(job.dataset_version_id),
        "epoch": epoch_progress(job.current_epoch, job.total_epochs)
        if job.pruned_epoch is None
        else f"pruned at epoch {job.pruned_epoch + 1}",
        "queue": queue_text(job.state, job.queue_position, job.waiting_for),
        "created": format_time(job.created_at),
        "href": f"/jobs/{job.id}",
    }


def load_jobs(token: str, project_id: int, filters: dict[str, str]) -> dict[str, Any]:
    """Rows and filter options for the user behind `token` (blocking: run in a thread)."""
    actor = optional_web_actor(token)
    if actor is None:
        return {"signed_in": False}
    options = jobs.job_filter_options(actor, project_id=project_id)
    items = jobs.job_list(
        actor,
        project_id=project_id,
        states=[filters["state"]] if filters.get("state") else None,
        owner_id=int(filters["owner"]) if filters.get("owner") else None,
        dataset_version_ids=[int(filters["dataset"])] if filters.get("dataset") else None,
        search=filters.get("search", ""),
        light=True,  # the table shows neither log lines nor artifacts
    )
    return {"signed_in": True, "rows": [list_row(i) for i in items], **options}


class JobsListState(AuthState):
    project_id: int = 0
    rows: list[dict[str, str]] = []
    owners: list[dict[str, str]] = []
    datasets: list[dict[str, str]] = []
    state_filter: str = ""
    owner_filter: str = ""
    dataset_filter: str = ""
    search: str = ""
    load_error: str = ""
    loaded: bool = False
    _generation: int = 0
    # Reads overlap (a filter change while a pushed change re-reads): only the newest one's rows
    # are shown, or a slow unfiltered read would land after the filtered one and stay.
    _read_seq: int = 0

    def _filters(self) -> dict[str, str]:
        return {
            "state": self.state_filter,
            "owner": self.owner_filter,
            "dataset": self.dataset_filter,
            "search": self.search,
        }

    async def _reload(self) -> Any:
        async with self:
            token, project_id, filters, path = (
                self.token,
                self.project_id,
                self._filters(),
                self.router.url.path,
            )
            self._read_seq += 1
            seq = self._read_seq
        try:
            found = await asyncio.to_thread(load_jobs, token, project_id, filters)
        except DomainError as exc:
            async with self:
                self.load_error, self.loaded = exc.message, True
            return None
        async with self:
            if seq != self._read_seq:
                return None
            if not found["signed_in"]:
                self._remember(None)
                return login_redirect(path)
            self.rows, self.owners, self.datasets = found["rows"], found["owners"], found["datasets"]
            self.load_error, self.loaded = "", True
        return None

    @rx.event(background=True)
    async def load(self):
        async with self:
            project_id = project_from_path(self.router.url.path)
            if project_id is None:
                self.load_error, self.loaded = "This is not a project address.", True
                return
            if project_id != self.project_id:
                self.rows, self.loaded = [], False
                self.state_filter = self.owner_filter = self.dataset_filter = self.search = ""
            self.project_id = project_id
            self._refresh_user()
            self._generation += 1
            generation = self._generation
        redirect = await self._reload()
        if redirect is not None:
            return redirect
        # Pushed: the list re-reads when a job of this project changes (services.infra.live).
        gone = DisconnectTimer()
        with watch([live.project_channel(project_id)]) as watching:
            while True:
                await next_change(watching)
                async with self:
                    if generation != self._generation or self.router.route_id != _JOBS_ROUTE_ID:
                        return
                    if gone.update(await client_connected(self.router.session.client_token)):
                        return
                if await self._reload() is not None:
                    return

    @rx.event(background=True)
    async def set_filter(self, name: str, value: str):
        async with self:
            if name in {"state_filter", "owner_filter", "dataset_filter", "search"}:
                setattr(self, name, value)
        return await self._reload()
