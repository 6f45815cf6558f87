"""The platform administration page (`/admin`): accounts, the sign-up switch and the audit log."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime
from typing import Any

import reflex as rx

from services.actions import admin
from services.actions.core import Actor, SessionEnded, web_actor
from services.errors import DomainError, InvalidInput
from state.auth_state import AuthState, error_message, login_redirect
from state.formatting import format_time

AUDIT_PAGE = 50
AUDIT_FILTERS = ("actor", "action", "result", "project_id", "since", "until")


def parse_day(value: str, *, end: bool = False) -> datetime | None:
    """'YYYY-MM-DD' from a date input -> the start (or end) of that day; '' -> None."""
    value = (value or "").strip()
    if not value:
        return None
    try:
        day = datetime.strptime(value, "%Y-%m-%d")
    except ValueError as exc:
        raise InvalidInput(f"{value!r} is not a date (use YYYY-MM-DD)") from exc
    return day.replace(hour=23, minute=59, second=59) if end else day


def audit_filter(form: dict[str, str]) -> admin.AuditFilter:
    """The audit log's filter form, checked: bad input gets a message naming the field."""
    project = (form.get("project_id") or "").strip()
    if project and not project.isdigit():
        raise InvalidInput("Project id must be a whole number")
    result = form.get("result") or None
    if result not in (None, "ok", "denied", "failed"):
        raise InvalidInput("Result must be ok, denied or failed")
    return admin.AuditFilter(
        actor=(form.get("actor") or "").strip() or None,
        action=(form.get("action") or "").strip() or None,
        result=result,
        project_id=int(project) if project else None,
        since=parse_day(form.get("since", "")),
        until=parse_day(form.get("until", ""), end=True),
    )


def overview_view(actor: Actor) -> dict[str, Any]:
    found = admin.overview(actor)
    return {
        "signup": found.signup_enabled,
        "users": [
            {
                "id": str(u.id),
                "username": u.username,
                "avatar_name": u.avatar_name,
                "badge_color": u.badge_color,
                "email": u.email or "",
                "active": "yes" if u.is_active else "",
                "platform_admin": "yes" if u.is_platform_admin else "",
                "created": format_time(u.created_at),
                "you": "yes" if u.id == actor.user_id else "",
            }
            for u in found.users
        ],
        "projects": [
            {"id": str(p.id), "name": p.name, "priority": str(p.priority)} for p in admin.list_projects(actor)
        ],
    }


def parse_priority(value: Any) -> int:
    """A field of the projects table (priority, the row's project id): a whole number; the
    priority's range is the domain's rule."""
    text = str(value or "").strip()
    try:
        return int(text)
    except ValueError as exc:
        raise InvalidInput(f"Priority must be a whole number, not {text!r}") from exc


def audit_view(actor: Actor, form: dict[str, str], offset: int) -> list[dict[str, str]]:
    """One page of the audit log, plus one row to tell whether there is a next page."""
    rows = admin.audit_log(actor, filters=audit_filter(form), offset=offset, limit=AUDIT_PAGE + 1)
    return [
        {
            "id": str(r.id),
            "at": r.at.strftime("%Y-%m-%d %H:%M:%S"),
            "actor": r.actor or "—",
            "action": r.action,
            "target": r.target,
            "project": str(r.project_id or ""),
            "result": r.result,
            "detail": r.detail,
        }
        for r in rows
    ]


class AdminState(AuthState):
    ad_allowed: bool = False
    ad_loading: bool = True
    ad_error: str = ""
    ad_notice: str = ""
    ad_users: list[dict[str, str]] = []
    ad_signup: bool = False
    ad_projects: list[dict[str, str]] = []
    audit_items: list[dict[str, str]] = []
    audit_filters: dict[str, str] = {}
    audit_offset: int = 0
    audit_more: bool = False
    audit_error: str = ""
    audit_loading: bool = False

    async def _load_users(self, actor: Actor) -> None:
        try:
            overview = await asyncio.to_thread(overview_view, actor)
        except SessionEnded:
            async with self:
                self.ad_loading = False
            raise
        except DomainError as exc:
            async with self:
                self.ad_allowed, self.ad_loading, self.ad_error = False, False, error_message(exc)
            return
        async with self:
            self.ad_allowed, self.ad_loading = True, False
            self.ad_users, self.ad_signup = overview["users"], overview["signup"]
            self.ad_projects = overview["projects"]

    @rx.event(background=True)
    async def load(self):
        async with self:
            self.ad_loading, self.ad_error, self.ad_notice = True, "", ""
            self._refresh_user()
            token = self.token
        try:
            await self._load_users(await asyncio.to_thread(web_actor, token))
        except SessionEnded:
            async with self:
                self.ad_loading = False
                return login_redirect(self.router.url.path)
        async with self:
            allowed = self.ad_allowed
        if allowed:
            return AdminState.load_audit

    async def _change(self, change: Callable[[Actor], str]) -> None:
        """Run one administrative change (blocking, in a thread) and reload: `change` returns
        the notice to show; a refusal or bad input shows its message instead."""
        async with self:
            token, self.ad_error, self.ad_notice = self.token, "", ""
        try:
            actor = await asyncio.to_thread(web_actor, token)
            done = await asyncio.to_thread(change, actor)
        except DomainError as exc:
            async with self:
                self.ad_error = error_message(exc)
            return
        await self._load_users(actor)
        async with self:
            self.ad_notice = done

    @rx.event(background=True)
    async def set_active(self, user_id: str, active: bool):
        def change(actor: Actor) -> str:
            admin.update_user(actor, user_id=int(user_id), is_active=bool(active))
            return "Account " + ("activated." if active else "deactivated and signed out everywhere.")

        await self._change(change)

    @rx.event(background=True)
    async def toggle_signup(self, enabled: bool):
        def change(actor: Actor) -> str:
            admin.set_signup_enabled(actor, enabled=bool(enabled))
            return "Sign-up is " + ("on: anyone can create an account." if enabled else "off.")

        await self._change(change)

    @rx.event(background=True)
    async def set_priority(self, form: dict[str, Any]):
        def change(actor: Actor) -> str:
            priority = parse_priority(form.get("priority"))
            project_id = parse_priority(form.get("project_id"))
            saved = admin.set_project_priority(actor, project_id=project_id, priority=priority)
            return f"Project \u201c{saved.name}\u201d now has priority {saved.priority}."

        await self._change(change)

    @rx.event
    def filter_audit(self, form: dict[str, Any]):
        self.audit_filters = {k: str(form.get(k) or "") for k in AUDIT_FILTERS}
        self.audit_offset = 0
        return AdminState.load_audit

    @rx.event
    def audit_page(self, step: int):
        offset = max(0, self.audit_offset + int(step) * AUDIT_PAGE)
        if offset != self.audit_offset:
            self.audit_offset = offset
            return AdminState.load_audit

    @rx.event(background=True)
    async def load_audit(self):
        async with self:
            self.audit_loading, self.audit_error = True, ""
            token, filters, offset = self.token, dict(self.audit_filters), self.audit_offset
        try:
            actor = await asyncio.to_thread(web_actor, token)
            rows = await asyncio.to_thread(audit_view, actor, filters, offset)
        except DomainError as exc:
            async with self:
                self.audit_loading, self.audit_error = False, error_message(exc)
            return
        async with self:
            self.audit_items, self.audit_more = rows[:AUDIT_PAGE], len(rows) > AUDIT_PAGE
            self.audit_loading = False
