"""The projects + jobs dashboard (`/`): projects, datasets, the Train form and the jobs table."""

from __future__ import annotations

import asyncio

import reflex as rx

from components.project_card import ProjectCardData
from services.actions import jobs, overview
from services.actions.core import Actor, optional_web_actor
from services.domain.permissions import Action
from services.errors import DomainError
from services.infra import live
from state.auth_state import AuthState, login_redirect
from state.formatting import dataset_row, job_row, project_card
from state.page_helpers import role_allows
from state.polling import DisconnectTimer, client_connected, next_change, route_id, watch

DASHBOARD_ROUTE = "/"
_DASHBOARD_ROUTE_ID = route_id(DASHBOARD_ROUTE)


def _jobs_rows(token: str, project_id: int) -> list[dict[str, str]] | None:
    actor = optional_web_actor(token)
    if actor is None:
        return None
    return [job_row(j) for j in jobs.project_jobs(actor, project_id=project_id)]


class DashboardState(AuthState):
    projects: list[dict[str, str]] = []
    project_cards: list[ProjectCardData] = []
    selected_project_id: str = ""
    project_role: str = ""
    datasets: list[dict[str, str]] = []
    jobs: list[dict[str, str]] = []
    load_error: str = ""
    _watch_generation: int = 0

    @rx.var
    def can_train(self) -> bool:
        return role_allows(self.project_role, Action.job_create)

    @rx.var
    def selected_project_name(self) -> str:
        for project in self.projects:
            if project["value"] == self.selected_project_id:
                return project["label"]
        return ""

    def _load(self, actor: Actor) -> None:
        """The projects list and the selected project's role, datasets and jobs (one short read)."""
        self.datasets, self.jobs, self.project_role = [], [], ""
        found = jobs.project_overview(actor, project_id=None)
        self.projects = [{"value": str(p.id), "label": p.name, "role": p.role} for p in found.projects]
        ids = [p["value"] for p in self.projects]
        if self.selected_project_id not in ids:
            self.selected_project_id = ids[0] if ids else ""
        if not self.selected_project_id:
            return
        try:
            found = jobs.project_overview(actor, project_id=int(self.selected_project_id))
        except DomainError as exc:
            self.load_error = exc.message
            return
        self.project_role = found.role
        self.datasets = [dataset_row(v) for v in found.datasets]
        self.jobs = [job_row(j) for j in found.jobs]

    @rx.event
    def load(self):
        self.load_error = ""
        actor = self._refresh_user()
        if actor is None:
            return login_redirect(self.router.url.path)
        self._load(actor)
        self.project_cards = [project_card(p) for p in overview.project_overviews(actor)]
        self._watch_generation += 1
        return DashboardState.watch_jobs(self._watch_generation)

    @rx.event
    def select_project(self, project_id: str):
        self.load_error = ""
        actor = self._refresh_user()
        if actor is None:
            return login_redirect(self.router.url.path)
        self.selected_project_id = project_id
        self._load(actor)
        self._watch_generation += 1
        return DashboardState.watch_jobs(self._watch_generation)

    @rx.event(background=True)
    async def watch_jobs(self, generation: int):
        """Refresh the jobs table when a job of the selected project changes (pushed; newest load wins)."""
        async with self:
            project = self.selected_project_id
        if not project:
            return
        gone = DisconnectTimer()
        with watch([live.project_channel(int(project))]) as watching:
            while True:
                await next_change(watching)
                async with self:
                    if generation != self._watch_generation or self.router.route_id != _DASHBOARD_ROUTE_ID:
                        return
                    if gone.update(await client_connected(self.router.session.client_token)):
                        return
                    if project != self.selected_project_id:
                        return
                    token = self.token
                try:
                    rows = await asyncio.to_thread(_jobs_rows, token, int(project))
                except DomainError:
                    return
                if rows is None:
                    return
                async with self:
                    if generation == self._watch_generation and project == self.selected_project_id:
                        self.jobs = rows
