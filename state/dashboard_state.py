"""The projects + jobs dashboard (`/`): projects, datasets, the Train form and the jobs table."""

from __future__ import annotations

import asyncio
from typing import Any

import reflex as rx

from components.project_card import ProjectCardData
from services.actions import overview, views
from services.actions.core import Actor
from services.domain import jobs as job_service
from services.domain.permissions import Action, authorize
from services.errors import DomainError
from services.infra.db import session_scope
from state.auth_state import AuthState, login_redirect, resolve_user
from state.formatting import dataset_option, dataset_row, job_row, project_card
from state.page_helpers import role_allows
from state.polling import POLL_INTERVAL_S, DisconnectTimer, client_connected, route_id

JOBS_POLL_INTERVAL_S = 2 * POLL_INTERVAL_S
DASHBOARD_ROUTE = "/"
_DASHBOARD_ROUTE_ID = route_id(DASHBOARD_ROUTE)


def _create_job(token: str, project_id: int, request: dict[str, Any]) -> tuple[int, int]:
    """Create and commit a queued job; returns (job id, attempt)."""
    with session_scope() as session:
        user = resolve_user(session, token)
        if user is None:
            raise DomainError("Your session has ended: sign in again")
        authorize(session, user=user, project_id=project_id, action=Action.dataset_write)
        job = job_service.create_job(session, project_id=project_id, user=user, **request)
        assert job.id is not None
        return job.id, job.attempt


def _jobs_rows(token: str, project_id: int) -> list[dict[str, str]] | None:
    with session_scope() as session:
        user = resolve_user(session, token)
        if user is None:
            return None
        authorize(session, user=user, project_id=project_id, action=Action.project_read)
        return [job_row(j) for j in views.project_jobs(session, project_id=project_id)]


class DashboardState(AuthState):
    projects: list[dict[str, str]] = []
    project_cards: list[ProjectCardData] = []
    selected_project_id: str = ""
    project_role: str = ""
    datasets: list[dict[str, str]] = []
    dataset_options: list[dict[str, str]] = []
    jobs: list[dict[str, str]] = []
    load_error: str = ""
    form_error: str = ""
    submitting: bool = False
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

    def _load_project(self, session: Any, user: Any) -> None:
        self.datasets, self.dataset_options, self.jobs, self.project_role = [], [], [], ""
        if not self.selected_project_id:
            return
        project_id = int(self.selected_project_id)
        try:
            role = authorize(session, user=user, project_id=project_id, action=Action.project_read)
        except DomainError as exc:
            self.load_error = exc.message
            return
        self.project_role = role.value
        versions = views.project_datasets(session, project_id=project_id)
        self.datasets = [dataset_row(v) for v in versions]
        self.dataset_options = [dataset_option(v) for v in versions]
        self.jobs = [job_row(j) for j in views.project_jobs(session, project_id=project_id)]

    @rx.event
    def load(self):
        self.load_error, self.form_error = "", ""
        with session_scope() as session:
            user = self._current_user(session)
            if user is None:
                return login_redirect(self.router.url.path)
            actor = Actor.of(user, channel="web")
            projects = views.user_projects(session, user=user)
            self.projects = [{"value": str(p.id), "label": p.name, "role": p.role} for p in projects]
            ids = [p["value"] for p in self.projects]
            if self.selected_project_id not in ids:
                self.selected_project_id = ids[0] if ids else ""
            self._load_project(session, user)
        self.project_cards = [project_card(p) for p in overview.project_overviews(actor)]
        self._watch_generation += 1
        return DashboardState.watch_jobs(self._watch_generation)

    @rx.event
    def select_project(self, project_id: str):
        self.load_error, self.form_error = "", ""
        with session_scope() as session:
            user = self._current_user(session)
            if user is None:
                return login_redirect(self.router.url.path)
            self.selected_project_id = project_id
            self._load_project(session, user)

    @rx.event(background=True)
    async def watch_jobs(self, generation: int):
        """Refresh the jobs table while this dashboard is open (newest load wins)."""
        gone = DisconnectTimer(interval_s=JOBS_POLL_INTERVAL_S)
        while True:
            await asyncio.sleep(JOBS_POLL_INTERVAL_S)
            async with self:
                if generation != self._watch_generation or self.router.route_id != _DASHBOARD_ROUTE_ID:
                    return
                if gone.update(client_connected(self.router.session.client_token)):
                    return
                token, project = self.token, self.selected_project_id
            if not project:
                continue
            try:
                rows = await asyncio.to_thread(_jobs_rows, token, int(project))
            except DomainError:
                return
            if rows is None:
                return
            async with self:
                if generation == self._watch_generation and project == self.selected_project_id:
                    self.jobs = rows
