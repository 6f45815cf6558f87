"""The sweep page (`/sweeps/[sweep_id]`), live, and a project's sweeps list.

The page follows the sweep by push (services.infra.live's sweep channel: a trial job changed, or
the worker's step reported, pruned, told or asked) and re-reads only then, as the job page does.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import plotly.graph_objects as go
import reflex as rx

from components.sweep_charts import history_figure, importance_figure, parallel_figure
from components.training_charts import empty_figure
from services.actions import sweeps
from services.actions.core import optional_web_actor, web_actor
from services.domain.permissions import Action
from services.domain.schemas import SweepDetail, SweepPublic
from services.errors import DomainError, Overloaded
from services.infra import live as live_channels
from state.auth_state import AuthState, login_redirect
from state.formatting import format_time
from state.page_helpers import project_from_path, role_allows
from state.polling import PAUSED_MESSAGE, DisconnectTimer, client_connected, next_change, route_id, watch

SWEEP_ROUTE = "/sweeps/[sweep_id]"
SWEEPS_ROUTE = "/projects/[project_id]/sweeps"
_SWEEP_ROUTE_ID = route_id(SWEEP_ROUTE)
TRIAL_LABELS = {
    "RUNNING": "running",
    "COMPLETE": "complete",
    "PRUNED": "pruned",
    "FAIL": "failed",
    "WAITING": "waiting",
}


# --- pure helpers (unit-tested) ------------------------------------------------------------------


def value_text(value: float | None) -> str:
    return "—" if value is None else f"{value:.4g}"


def trial_rows(detail: SweepDetail) -> list[dict[str, str]]:
    """One row per trial, newest first, strings only."""
    searched = [n for n, e in detail.search_space.items() if e.get("type") != "fixed"]
    rows = []
    for trial in reversed(detail.trials):
        state = TRIAL_LABELS.get(trial.state, trial.state.lower())
        if trial.state == "PRUNED" and trial.pruned_epoch is not None:
            state = f"pruned at epoch {trial.pruned_epoch + 1}"
        rows.append(
            {
                "number": str(trial.number),
                "state": state,
                "params": ", ".join(
                    f"{p}={_short(trial.params.get(p))}" for p in searched if p in trial.params
                ),
                "value": value_text(trial.value),
                "epochs": str(len(trial.intermediate)),
                "job": str(trial.job_id or ""),
                "href": f"/jobs/{trial.job_id}" if trial.job_id else "",
                "best": "yes" if trial.job_id is not None and trial.job_id == detail.best_job_id else "",
            }
        )
    return rows


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def progress_text(sweep: SweepPublic) -> str:
    parts = [f"{sweep.trials_done} of {sweep.n_trials} trials finished"]
    if sweep.trials_running:
        parts.append(f"{sweep.trials_running} running")
    return " · ".join(parts)


def space_text(space: dict[str, dict[str, Any]]) -> list[dict[str, str]]:
    """The search space as a person reads it: `lr0: 0.0001 to 0.1 (log)`, `optimizer: SGD, AdamW`."""
    rows = []
    for name, entry in space.items():
        kind = entry.get("type")
        if kind == "fixed":
            text = f"fixed at {entry['value']}"
        elif kind == "choice":
            text = "one of " + ", ".join(str(c) for c in entry["choices"])
        else:
            text = f"{entry['low']} to {entry['high']}" + (" (log)" if entry.get("log") else "")
        rows.append({"name": name, "text": text})
    return rows


@dataclass
class SweepSnapshot:
    signed_in: bool
    detail: SweepDetail | None = None
    role: str = ""
    own: bool = False
    error: str = ""
    busy: bool = False


def load_sweep(token: str, sweep_id: int) -> SweepSnapshot:
    actor = optional_web_actor(token)
    if actor is None:
        return SweepSnapshot(signed_in=False)
    try:
        view = sweeps.sweep_view(actor, sweep_id=sweep_id)
    except Overloaded:
        return SweepSnapshot(signed_in=True, busy=True)
    except DomainError as exc:
        return SweepSnapshot(signed_in=True, error=exc.message)
    return SweepSnapshot(signed_in=True, detail=view.detail, role=view.role, own=view.own)


def load_sweeps(token: str, project_id: int) -> list[dict[str, str]] | None:
    actor = optional_web_actor(token)
    if actor is None:
        return None
    return [
        {
            "id": str(s.id),
            "name": s.name,
            "state": s.state,
            "progress": progress_text(s),
            "objective": f"{s.direction} {s.objective}",
            "best": value_text(s.best_value),
            "href": f"/sweeps/{s.id}",
            "created": format_time(s.created_at),
        }
        for s in sweeps.sweep_list(actor, project_id=project_id)
    ]


# --- the sweep page ---------------------------------------------------------------------------


class SweepPageState(AuthState):
    page_sweep_id: int = 0
    project_id: int = 0
    loaded: bool = False
    not_found: str = ""
    busy_message: str = ""
    live_message: str = ""
    name: str = ""
    sweep_state: str = ""
    objective: str = ""
    direction: str = ""
    settings_text: str = ""
    message: str = ""
    progress: str = ""
    best_value: str = "—"
    best_job_id: int = 0
    best_params: list[dict[str, str]] = []
    space: list[dict[str, str]] = []
    trials: list[dict[str, str]] = []
    importance_note: str = ""
    mlflow_run_id: str = ""
    role: str = ""
    own: bool = False
    # Shown (with the charts' library loading) until the first read; then the sweep's own.
    history: go.Figure = empty_figure("Loading…", height=320)
    parallel: go.Figure = empty_figure("Loading…", height=340)
    importance: go.Figure = empty_figure("Loading…", height=260)
    action_message: str = ""
    working: bool = False
    _watch_generation: int = 0

    @rx.var
    def running(self) -> bool:
        return self.sweep_state == "running"

    @rx.var
    def can_cancel(self) -> bool:
        return role_allows(self.role, Action.job_cancel, own=self.own)

    @rx.var
    def can_train(self) -> bool:
        return role_allows(self.role, Action.job_create)

    @rx.var
    def has_best(self) -> bool:
        return self.best_job_id > 0

    def _apply(self, snap: SweepSnapshot) -> None:
        if snap.busy:
            self.busy_message = "The server is busy; this page retries by itself."
            return
        self.loaded, self.busy_message = True, ""
        if snap.detail is None:
            self.not_found, self.sweep_state = snap.error, ""
            return
        d = snap.detail
        self.not_found, self.role, self.own = "", snap.role, snap.own
        self.project_id, self.name, self.sweep_state = d.project_id, d.name, d.state
        self.objective, self.direction, self.message = d.objective, d.direction, d.message
        self.settings_text = (
            f"{d.direction} {d.objective} · {d.n_trials} trials, {d.parallelism} at a time · "
            f"sampler {d.sampler} · pruner {d.pruner} · {d.model.removesuffix('.yaml')} ({d.task})"
        )
        self.progress = progress_text(d)
        self.best_value = value_text(d.best_value)
        self.best_job_id = d.best_job_id or 0
        self.best_params = [{"name": k, "value": _short(v)} for k, v in d.best_params.items()]
        self.space = space_text(d.search_space)
        self.trials = trial_rows(d)
        self.importance_note = d.importance_note
        self.mlflow_run_id = d.mlflow_run_id or ""
        raw = [t.model_dump() for t in d.trials]
        searched = [n for n, e in d.search_space.items() if e.get("type") != "fixed"]
        self.history = history_figure(raw, d.objective, d.direction)
        logs = [n for n, e in d.search_space.items() if e.get("log")]
        self.parallel = parallel_figure(raw, searched, d.objective, log_params=logs)
        self.importance = importance_figure(d.importances, d.importance_note)

    @rx.event
    async def load(self):
        self.action_message, self.loaded = "", False
        if self._refresh_user() is None:
            return login_redirect(self.router.url.path)
        raw = str(self.router.url.path).rstrip("/").rsplit("/", 1)[-1]
        if not (raw.isdigit() and 0 < int(raw) < 2**63):
            self.page_sweep_id, self.loaded, self.sweep_state = 0, True, ""
            self.not_found = "This is not a sweep address: sweep ids are whole numbers."
            return
        self.page_sweep_id = int(raw)
        self._apply(await asyncio.to_thread(load_sweep, self.token, self.page_sweep_id))
        self._watch_generation += 1
        return SweepPageState.watch(self._watch_generation)

    @rx.event(background=True)
    async def watch(self, generation: int):
        """Follow the sweep while it runs and this page is open: re-read on each pushed change."""
        async with self:
            sweep_id = self.page_sweep_id
        gone = DisconnectTimer()
        with watch([live_channels.sweep_channel(sweep_id)]) as watching:
            while True:
                async with self:
                    if generation != self._watch_generation or self.router.route_id != _SWEEP_ROUTE_ID:
                        return
                    if not self.running or self.not_found:
                        return
                    if gone.update(await client_connected(self.router.session.client_token)):
                        return
                    token = self.token
                pushed = await next_change(watching)
                snap = await asyncio.to_thread(load_sweep, token, sweep_id)
                async with self:
                    if generation != self._watch_generation or sweep_id != self.page_sweep_id:
                        return
                    self.live_message = "" if pushed else PAUSED_MESSAGE
                    if not snap.signed_in:
                        self._remember(None)
                        redirect = login_redirect(self.router.url.path)
                    else:
                        self._apply(snap)
                        redirect = None
                if redirect is not None:
                    yield redirect
                    return

    @rx.event(background=True)
    async def cancel(self):
        async with self:
            if self.working or not self.page_sweep_id:
                return
            self.working, self.action_message = True, ""
            token, sweep_id = self.token, self.page_sweep_id
        try:
            actor = await asyncio.to_thread(web_actor, token)
            await sweeps.cancel(actor, sweep_id=sweep_id)
            message = "Sweep cancelled: waiting trials are cancelled, running ones stop at the next batch."
        except DomainError as exc:
            message = exc.message
        snap = await asyncio.to_thread(load_sweep, token, sweep_id)
        async with self:
            self.action_message, self.working = message, False
            if snap.signed_in:
                self._apply(snap)

    @rx.event(background=True)
    async def train_best(self):
        async with self:
            if self.working or not self.page_sweep_id:
                return
            self.working, self.action_message = True, ""
            token, sweep_id = self.token, self.page_sweep_id
        try:
            actor = await asyncio.to_thread(web_actor, token)
            job = await sweeps.train_best(actor, sweep_id=sweep_id)
        except DomainError as exc:
            async with self:
                self.working, self.action_message = False, exc.message
            return
        async with self:
            self.working = False
        return rx.redirect(f"/jobs/{job.id}")


# --- a project's sweeps -------------------------------------------------------------------------


class SweepsListState(AuthState):
    sl_project_id: int = 0
    sl_rows: list[dict[str, str]] = []
    sl_error: str = ""
    sl_loaded: bool = False

    @rx.event(background=True)
    async def load(self):
        async with self:
            token, path = self.token, self.router.url.path
            project_id = project_from_path(path)
            self.sl_loaded, self.sl_error = False, ""
        if project_id is None:
            async with self:
                self.sl_loaded, self.sl_error = True, "This is not a project address."
            return
        try:
            rows = await asyncio.to_thread(load_sweeps, token, project_id)
        except DomainError as exc:
            async with self:
                self.sl_loaded, self.sl_error = True, exc.message
            return
        async with self:
            if rows is None:
                self._remember(None)
                return login_redirect(path)
            self._refresh_user()
            self.sl_project_id, self.sl_rows, self.sl_loaded = project_id, rows, True
