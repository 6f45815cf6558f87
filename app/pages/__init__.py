"""Every page of the UI, in one list of routes that app/app.py registers."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import reflex as rx

from app.pages.account import account_page
from app.pages.admin import admin_page
from app.pages.analytics import analytics_page
from app.pages.compare import compare_page
from app.pages.dashboard import dashboard_page
from app.pages.datasets import dataset_page, datasets_page
from app.pages.job import job_page
from app.pages.jobs_list import jobs_list_page
from app.pages.login import login_page
from app.pages.members import members_page
from app.pages.models import models_page
from app.pages.notifications import notifications_page
from app.pages.predictions import predictions_page
from app.pages.signup import signup_page
from app.pages.train import train_page
from state.account_state import AccountState
from state.admin_state import AdminState
from state.analytics_state import ANALYTICS_ROUTE, AnalyticsState
from state.auth_state import AuthState
from state.compare_state import COMPARE_ROUTE, CompareState
from state.dashboard_state import DashboardState
from state.datasets_state import DatasetDetailState, DatasetsState
from state.job_state import JOB_ROUTE, JobPageState
from state.jobs_state import JOBS_ROUTE, JobsListState
from state.members_state import MembersState
from state.models_state import MODELS_ROUTE, ModelsState
from state.notifications_state import NOTIFICATIONS_ROUTE, NotificationsState
from state.predictions_state import PREDICTIONS_ROUTE, PredictionsState
from state.signup_state import SignupState
from state.train_state import TRAIN_ROUTE, TrainState


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
    Page("/projects/[project_id]/datasets", datasets_page, "Datasets · Vision Training", DatasetsState.load),
    Page(
        "/projects/[project_id]/datasets/[dataset_id]",
        dataset_page,
        "Dataset · Vision Training",
        DatasetDetailState.load,
    ),
    Page("/projects/[project_id]/members", members_page, "Members · Vision Training", MembersState.load),
    Page(
        NOTIFICATIONS_ROUTE,
        notifications_page,
        "Notifications · Vision Training",
        NotificationsState.load,
    ),
    Page("/signup", signup_page, "Sign up · Vision Training", SignupState.load_signup),
    Page("/account", account_page, "Account · Vision Training", AccountState.load),
    Page("/admin", admin_page, "Administration · Vision Training", AdminState.load),
    Page(TRAIN_ROUTE, train_page, "New training job · Vision Training", TrainState.load),
    Page(JOBS_ROUTE, jobs_list_page, "Jobs · Vision Training", JobsListState.load),
    Page(COMPARE_ROUTE, compare_page, "Compare runs · Vision Training", CompareState.load),
    Page(PREDICTIONS_ROUTE, predictions_page, "Compare predictions · Vision Training", PredictionsState.load),
    Page(MODELS_ROUTE, models_page, "Models · Vision Training", ModelsState.load),
    Page(ANALYTICS_ROUTE, analytics_page, "Analytics · Vision Training", AnalyticsState.load),
)
