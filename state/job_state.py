"""The job page (`/jobs/[job_id]`): live status, metrics chart, logs, artifacts and Cancel."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import plotly.graph_objects as go
import reflex as rx

from components.charts import flatten_points, metrics_figure
from services import views
from services.db import session_scope
from services.errors import DomainError
from services.models import Role
from services.permissions import RANK, require_role
from services.schemas import JobDetail
from state.auth_state import AuthState, login_redirect, resolve_user
from state.formatting import FINISHED_STATES, artifact_rows, epoch_progress, format_time
from state.polling import POLL_INTERVAL_S, DisconnectTimer, client_connected, route_id

JOB_ROUTE = "/jobs/[job_id]"
_JOB_ROUTE_ID = route_id(JOB_ROUTE)
LOG_LINES = 20


@dataclass
class JobSnapshot:
    """What one poll of the database found (None fields: signed out / not visible)."""

    signed_in: bool = True
    error: str = ""
    detail: JobDetail | None = None
    role: str = ""
    points: list[dict[str, float]] = field(default_factory=list)


def load_job(token: str, job_id: int) -> JobSnapshot:
    """Read one job for the user behind `token`, checking the viewer role (blocking; run in a thread)."""
    with session_scope() as session:
        user = resolve_user(session, token)
        if user is None:
            return JobSnapshot(signed_in=False)
        try:
            project_id = views.project_of_job(session, job_id=job_id)
            role = require_role(session, user=user, project_id=project_id, minimum=Role.viewer)
            detail = views.job_detail(session, project_id=project_id, job_id=job_id)
        except DomainError:
            # Same answer for "no such job" and "not your project": existence is not leaked.
            return JobSnapshot(error=f"Job {job_id} was not found, or you do not have access to it.")
        return JobSnapshot(detail=detail, role=role.value, points=flatten_points(detail.metrics))


def parse_job_id(raw: str) -> int | None:
    return int(raw) if raw.isdigit() and 0 < int(raw) < 2**63 else None


async def _cancel(token: str, job_id: int) -> str:
    with session_scope() as session:
        user = resolve_user(session, token)
        if user is None:
            raise DomainError("Your session has ended: sign in again")
        project_id = views.project_of_job(session, job_id=job_id)
        require_role(session, user=user, project_id=project_id, minimum=Role.member)
        job = await views.cancel_job(session, user=user, project_id=project_id, job_id=job_id)
        return job.state


class JobPageState(AuthState):
    page_job_id: int = 0
    not_found: str = ""
    loaded: bool = False
    job_name: str = ""
    job_state: str = ""
    model: str = ""
    epoch_text: str = ""
    device: str = ""
    mlflow_run_id: str = ""
    error_kind: str = ""
    error_message: str = ""
    created: str = ""
    artifacts: list[dict[str, str]] = []
    log_lines: list[str] = []
    points: list[dict[str, float]] = []
    role: str = ""
    cancel_message: str = ""
    cancelling: bool = False
    _watch_generation: int = 0

    @rx.var
    def points_count(self) -> int:
        return len(self.points)

    @rx.var
    def points_label(self) -> str:
        return f"{len(self.points)} epoch{'' if len(self.points) == 1 else 's'} plotted"

    @rx.var
    def figure(self) -> go.Figure:
        return metrics_figure(self.points)

    @rx.var
    def finished(self) -> bool:
        return self.job_state in FINISHED_STATES

    @rx.var
    def can_cancel(self) -> bool:
        return (
            bool(self.job_state)
            and self.job_state not in FINISHED_STATES
            and bool(self.role)
            and RANK[Role(self.role)] >= RANK[Role.member]
        )

    def _apply(self, snap: JobSnapshot) -> None:
        self.loaded = True
        if snap.detail is None:
            self.not_found, self.job_state = snap.error, ""
            return
        job = snap.detail
        self.not_found = ""
        self.job_name, self.job_state, self.model, self.role = job.name, job.state, job.model, snap.role
        self.epoch_text = epoch_progress(job.current_epoch, job.total_epochs)
        self.device = job.trainer_device or f"{job.device} (requested)"
        self.mlflow_run_id = job.mlflow_run_id or ""
        self.error_kind, self.error_message = job.error_kind or "", job.error_message or ""
        self.created = format_time(job.created_at)
        self.artifacts = artifact_rows(job.artifacts)
        self.log_lines = job.log_tail[-LOG_LINES:]
        if snap.points != self.points:
            self.points = snap.points

    @rx.event
    async def load(self):
        self.cancel_message, self.loaded = "", False
        with session_scope() as session:
            if self._current_user(session) is None:
                return login_redirect(self.router.url.path)
        job_id = parse_job_id(str(self.router.url.path).rstrip("/").rsplit("/", 1)[-1])
        if job_id is None:
            self.page_job_id, self.loaded, self.job_state = 0, True, ""
            self.not_found = "This is not a job address: job ids are whole numbers."
            return
        if job_id != self.page_job_id:
            self.points, self.artifacts, self.log_lines = [], [], []
        self.page_job_id = job_id
        self._apply(await asyncio.to_thread(load_job, self.token, job_id))
        self._watch_generation += 1
        return JobPageState.watch(self._watch_generation)

    @rx.event(background=True)
    async def watch(self, generation: int):
        """Poll the database about once a second while this page is open and the job unfinished.

        Each new epoch row adds a point to the chart without a reload. The loop ends when the
        job finishes, the user leaves the page, the tab has been gone for a while, or a newer
        page load started its own loop.
        """
        gone = DisconnectTimer()
        while True:
            async with self:
                if generation != self._watch_generation or self.router.route_id != _JOB_ROUTE_ID:
                    return
                if self.finished or not self.page_job_id or self.not_found:
                    return
                if gone.update(client_connected(self.router.session.client_token)):
                    return
                token, job_id = self.token, self.page_job_id
            await asyncio.sleep(POLL_INTERVAL_S)
            snap = await asyncio.to_thread(load_job, token, job_id)
            async with self:
                if generation != self._watch_generation or job_id != self.page_job_id:
                    return
                if not snap.signed_in:
                    self._remember(None)
                    return login_redirect(self.router.url.path)
                self._apply(snap)

    @rx.event(background=True)
    async def cancel(self):
        async with self:
            if self.cancelling or not self.page_job_id:
                return
            self.cancelling, self.cancel_message = True, ""
            token, job_id = self.token, self.page_job_id
        try:
            state = await _cancel(token, job_id)
            message = (
                "Job cancelled."
                if state == "cancelled"
                else "Cancel requested: the trainer stops at the next batch and keeps what it has."
            )
        except DomainError as exc:
            message = exc.message
        snap = await asyncio.to_thread(load_job, token, job_id)
        async with self:
            self.cancel_message, self.cancelling = message, False
            if snap.signed_in:
                self._apply(snap)
