"""The project members page (`/projects/[project_id]/members`): members, their roles, job quotas.

Handlers read the state, resolve the actor with `web_actor(token)` off the event loop, call
services.actions.projects (which authorizes and audits) and set the state.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import reflex as rx

from services.actions import projects
from services.actions.core import Actor, SessionEnded, web_actor
from services.domain import quotas
from services.domain.models import Role
from services.domain.permissions import Action
from services.domain.schemas import QuotasPublic
from services.errors import DomainError, InvalidInput
from state.auth_state import AuthState, error_message, login_redirect
from state.page_helpers import name_fields, project_path_ids, quota_input, role_allows

ROLES = [r.value for r in (Role.viewer, Role.member, Role.admin, Role.owner)]
# The quota form's labels; the service's messages name the API fields, the page names these.
QUOTA_LABELS = {
    "max_running_jobs": "Jobs running at once",
    "max_queued_jobs": "Jobs waiting in the queue",
    "max_gpus": "GPUs in use at once",
}


def parse_role(value: str) -> Role:
    try:
        return Role(value)
    except ValueError as exc:
        raise InvalidInput(f"Unknown role {value!r}; choose one of {', '.join(ROLES)}") from exc


def quota_view(found: QuotasPublic) -> dict[str, str]:
    """The quota form's values ("" = no limit) and a one-line summary of what counts now."""

    def limit(value: int | None) -> str:
        return "no limit" if value is None else str(value)

    return {
        "max_running_jobs": "" if found.max_running_jobs is None else str(found.max_running_jobs),
        "max_queued_jobs": "" if found.max_queued_jobs is None else str(found.max_queued_jobs),
        "max_gpus": "" if found.max_gpus is None else str(found.max_gpus),
        "summary": (
            f"Running: {found.running} now (limit: {limit(found.max_running_jobs)}). "
            f"Waiting: {found.queued} now (limit: {limit(found.max_queued_jobs)}). "
            f"GPUs: {found.gpus} in use (limit: {limit(found.max_gpus)})."
        ),
    }


def members_view(actor: Actor, project_id: int) -> dict[str, Any]:
    """Members with their roles (viewer or higher), the caller's own role and the quotas."""
    page = projects.members_page(actor, project_id=project_id)
    return {
        "project": page.project.name,
        "role": page.project.role,
        "quotas": quota_view(page.quotas),
        "rows": [
            {
                "user_id": str(m.user_id),
                "username": m.username,
                "avatar_name": m.avatar_name,
                "badge_color": m.badge_color,
                "role": m.role.value,
                "you": "yes" if m.user_id == actor.user_id else "",
            }
            for m in page.members
        ],
    }


def save_project_quotas(
    actor: Actor, project_id: int, max_running: str, max_queued: str, max_gpus: str | None = None
) -> dict[str, str]:
    """Set the quotas from the form's text (empty = no limit; `max_gpus` None = unchanged); errors
    name the form's labels."""
    try:
        found = projects.set_quotas(
            actor,
            project_id=project_id,
            max_running_jobs=quota_input(max_running, field="max_running_jobs"),
            max_queued_jobs=quota_input(max_queued, field="max_queued_jobs"),
            max_gpus=quotas.UNCHANGED if max_gpus is None else quota_input(max_gpus, field="max_gpus"),
        )
    except InvalidInput as exc:
        raise InvalidInput(name_fields(exc.message, QUOTA_LABELS)) from exc
    return quota_view(found)


def invite_member(actor: Actor, project_id: int, username: str, role: str) -> str:
    added = projects.add_member(actor, project_id=project_id, username=username, role=parse_role(role))
    return f"{added.username} joined as {added.role.value}."


def change_member_role(actor: Actor, project_id: int, user_id: int, role: str) -> str:
    changed = projects.change_role(actor, project_id=project_id, user_id=user_id, role=parse_role(role))
    return f"{changed.username} is now {changed.role.value}."


def remove_member(actor: Actor, project_id: int, user_id: int) -> str:
    projects.remove_member(actor, project_id=project_id, user_id=user_id)
    return "Member removed."


class MembersState(AuthState):
    mb_project_id: int = 0
    mb_project_name: str = ""
    mb_role: str = ""
    mb_rows: list[dict[str, str]] = []
    mb_loading: bool = True
    mb_error: str = ""
    mb_notice: str = ""
    mb_action_error: str = ""
    mb_busy: bool = False
    mb_quotas: dict[str, str] = {}
    mb_quota_notice: str = ""
    mb_quota_error: str = ""
    mb_quota_busy: bool = False
    mb_quota_key: int = 0

    @rx.var
    def can_manage(self) -> bool:
        return role_allows(self.mb_role, Action.members_manage)

    @rx.var
    def can_manage_quotas(self) -> bool:
        return role_allows(self.mb_role, Action.quotas_manage)

    def _show_quotas(self, view: dict[str, str]) -> None:
        self.mb_quotas = view
        self.mb_quota_key += 1  # re-mount the form so its inputs show the saved values

    @rx.event(background=True)
    async def load(self):
        async with self:
            project_id, _ = project_path_ids(self.router.url.path)
            if project_id != self.mb_project_id:
                self.mb_rows, self.mb_role, self.mb_notice, self.mb_action_error = [], "", "", ""
                self.mb_quotas, self.mb_quota_notice, self.mb_quota_error = {}, "", ""
            self.mb_project_id, self.mb_loading, self.mb_error = project_id or 0, True, ""
            self._refresh_user()
            token = self.token
        if not project_id:
            async with self:
                self.mb_loading, self.mb_error = False, "This address does not name a project."
            return
        try:
            actor = await asyncio.to_thread(web_actor, token)
            found = await asyncio.to_thread(members_view, actor, project_id)
        except SessionEnded:
            async with self:
                self.mb_loading = False
                return login_redirect(self.router.url.path)
        except DomainError as exc:
            async with self:
                self.mb_loading = False
                self.mb_error = f"{error_message(exc)}. Check the address, or ask a project admin to add you."
            return
        async with self:
            self.mb_rows, self.mb_role = found["rows"], found["role"]
            self.mb_project_name, self.mb_loading = found["project"], False
            self._show_quotas(found["quotas"])

    async def _run(self, fn: Callable[..., str], *args: Any) -> None:
        async with self:
            if self.mb_busy:
                return
            self.mb_busy, self.mb_notice, self.mb_action_error = True, "", ""
            token, project_id = self.token, self.mb_project_id
        try:
            actor = await asyncio.to_thread(web_actor, token)
            notice = await asyncio.to_thread(fn, actor, project_id, *args)
        except DomainError as exc:
            async with self:
                self.mb_busy, self.mb_action_error = False, error_message(exc)
            return
        try:
            found = await asyncio.to_thread(members_view, actor, project_id)
        except DomainError:  # the caller just removed themselves, or lost access
            found = {"rows": [], "role": "", "project": self.mb_project_name}
        async with self:
            self.mb_busy, self.mb_notice = False, notice
            self.mb_rows, self.mb_role = found["rows"], found["role"]

    @rx.event(background=True)
    async def invite(self, form: dict[str, Any]):
        username = str(form.get("username") or "").strip()
        if not username:
            async with self:
                self.mb_action_error = "Enter the username of the person to invite."
            return
        await self._run(invite_member, username, str(form.get("role") or "member"))

    @rx.event(background=True)
    async def change_role(self, user_id: str, role: str):
        await self._run(change_member_role, int(user_id), role)

    @rx.event(background=True)
    async def remove(self, user_id: str):
        await self._run(remove_member, int(user_id))

    @rx.event(background=True)
    async def save_quotas(self, form: dict[str, Any]):
        async with self:
            if self.mb_quota_busy:
                return
            self.mb_quota_busy, self.mb_quota_notice, self.mb_quota_error = True, "", ""
            token, project_id = self.token, self.mb_project_id
        running, queued = str(form.get("max_running_jobs") or ""), str(form.get("max_queued_jobs") or "")
        gpus = str(form.get("max_gpus") or "")
        try:
            actor = await asyncio.to_thread(web_actor, token)
            view = await asyncio.to_thread(save_project_quotas, actor, project_id, running, queued, gpus)
        except DomainError as exc:
            async with self:
                self.mb_quota_busy, self.mb_quota_error = False, error_message(exc)
            return
        async with self:
            self.mb_quota_busy, self.mb_quota_notice = False, "Quotas saved."
            self._show_quotas(view)
