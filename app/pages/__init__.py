"""Every page of the UI, in one list of routes that app/app.py registers."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import reflex as rx

from app.pages.dashboard import dashboard_page
from app.pages.job import job_page
from app.pages.login import login_page
from state.auth_state import AuthState
from state.dashboard_state import DashboardState
from state.job_state import JOB_ROUTE, JobPageState


@dataclass(frozen=True)
class Page:
    route: str
    component: Callable[[], rx.Component]
    title: str
    on_load: Any = None


PAGES: tuple[Page, ...] = (
    Page("/login", login_page, "Sign in · Vision Training", AuthState.load_login_page),
    Page("/", dashboard_page, "Projects · Vision Training", DashboardState.load),
    Page(JOB_ROUTE, job_page, "Job · Vision Training", JobPageState.load),
)
