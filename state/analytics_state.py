"""/analytics: jobs per day, success rate, compute hours and queue wait, per project or per user."""

from __future__ import annotations

import asyncio
from typing import Any

import plotly.graph_objects as go
import reflex as rx

from components.training_charts import empty_figure, grouped_bars
from services.actions import experiments as usage_actions
from services.actions.core import optional_web_actor
from services.domain import experiments
from state.auth_state import AuthState, login_redirect

ANALYTICS_ROUTE = "/analytics"


def load_usage(token: str, group_by: str, days: int) -> dict[str, Any]:
    actor = optional_web_actor(token)
    if actor is None:
        return {"signed_in": False}
    usage, admin = usage_actions.analytics(actor, group_by=group_by, days=days)
    return {"signed_in": True, "usage": usage, "admin": admin}


def summary_rows(usage: experiments.Usage) -> list[dict[str, str]]:
    return [
        {
            "group": group,
            "jobs": str(int(s["jobs"])),
            "success": f"{100 * s['success_rate']:.0f}%" if s["finished"] else "—",
            "cpu": f"{s['cpu_hours']:.2f}",
            "gpu": f"{s['gpu_hours']:.2f}",
            "wait": f"{s['queue_wait_median_s']:.0f} s / {s['queue_wait_p90_s']:.0f} s",
        }
        for group, s in sorted(usage.summary.items())
    ]


def usage_figures(usage: experiments.Usage) -> dict[str, go.Figure]:
    groups = sorted(usage.summary)
    if not groups:
        empty = empty_figure("No jobs in this period")
        return {"per_day": empty, "success": empty, "compute": empty, "wait": empty}
    s = usage.summary
    return {
        "per_day": grouped_bars(
            usage.days, {g: usage.jobs_per_day[g] for g in groups}, y_title="Jobs", stacked=True
        ),
        "success": grouped_bars(
            groups, {"Success rate (%)": [round(100 * s[g]["success_rate"], 1) for g in groups]}, y_title="%"
        ),
        "compute": grouped_bars(
            groups,
            {
                "CPU hours": [round(s[g]["cpu_hours"], 3) for g in groups],
                "GPU hours": [round(s[g]["gpu_hours"], 3) for g in groups],
            },
            y_title="Hours",
            stacked=True,
        ),
        "wait": grouped_bars(
            groups,
            {
                "Median wait (s)": [round(s[g]["queue_wait_median_s"], 1) for g in groups],
                "90th percentile (s)": [round(s[g]["queue_wait_p90_s"], 1) for g in groups],
            },
            y_title="Seconds",
        ),
    }


class AnalyticsState(AuthState):
    group_by: str = "project"
    days: str = "30"
    rows: list[dict[str, str]] = []
    per_day: go.Figure = empty_figure("Loading…")
    success: go.Figure = empty_figure("Loading…")
    compute: go.Figure = empty_figure("Loading…")
    wait: go.Figure = empty_figure("Loading…")
    is_admin: bool = False
    loaded: bool = False

    async def _reload(self) -> Any:
        async with self:
            token, group_by, days, path = self.token, self.group_by, int(self.days), self.router.url.path
        found = await asyncio.to_thread(load_usage, token, group_by, days)
        async with self:
            if not found["signed_in"]:
                self._remember(None)
                return login_redirect(path)
            figures = usage_figures(found["usage"])
            self.per_day, self.success = figures["per_day"], figures["success"]
            self.compute, self.wait = figures["compute"], figures["wait"]
            self.rows, self.is_admin, self.loaded = summary_rows(found["usage"]), found["admin"], True
        return None

    @rx.event(background=True)
    async def load(self):
        async with self:
            self._refresh_user()
        return await self._reload()

    @rx.event(background=True)
    async def set_group_by(self, value: str):
        async with self:
            self.group_by = value if value in {"project", "user"} else "project"
        return await self._reload()

    @rx.event(background=True)
    async def set_days(self, value: str):
        async with self:
            self.days = value if value in {"7", "30", "90", "365"} else "30"
        return await self._reload()
