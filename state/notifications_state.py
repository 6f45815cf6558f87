"""The project notifications page (`/projects/[project_id]/notifications`): rules, the delivery
log and "send a test". Admins manage; members read. Every handler calls
services.actions.notifications (which authorizes and audits) off the event loop."""

from __future__ import annotations

import asyncio
from typing import Any

import reflex as rx
from pydantic import ValidationError

from services.actions import notifications
from services.actions.core import Actor, SessionEnded, web_actor
from services.actions.projects import get_project
from services.domain.notifications import EVENT_LABELS, EVENTS, RuleCreate
from services.domain.permissions import Action
from services.errors import DomainError, InvalidInput
from state.auth_state import AuthState, error_message, login_redirect
from state.page_helpers import project_from_path, role_allows

NOTIFICATIONS_ROUTE = "/projects/[project_id]/notifications"
EVENT_CHOICES = [{"value": e, "label": EVENT_LABELS[e]} for e in EVENTS]


def rule_request(form: dict[str, Any]) -> RuleCreate:
    """The add-rule form as a request; errors name the form's fields."""
    events = [e for e in EVENTS if form.get(f"event-{e}") in {True, "on", "true"}]
    if not events:
        raise InvalidInput("Tick at least one event to send.")
    kind = str(form.get("kind") or "webhook")
    if kind not in {"apprise", "webhook"}:
        raise InvalidInput("Choose a target kind: webhook or Apprise URL.")
    target = str(form.get("target") or "").strip()
    if not target:
        raise InvalidInput("Enter the target URL.")
    try:
        return RuleCreate(kind=kind, target=target, events=events)  # type: ignore[arg-type]
    except ValidationError as exc:
        raise InvalidInput(f"Target URL: {exc.errors()[0]['msg']}") from exc


def page_view(actor: Actor, project_id: int) -> dict[str, Any]:
    project = get_project(actor, project_id=project_id)
    rules = notifications.list_rules(actor, project_id=project_id)
    log = notifications.list_deliveries(actor, project_id=project_id, limit=50)
    return {
        "project": project.name,
        "role": project.role,
        "rules": [
            {
                "id": str(r.id),
                "kind": r.kind,
                "target": r.target,
                "events": ", ".join(EVENT_LABELS.get(e, e) for e in r.events),
            }
            for r in rules
        ],
        "log": [
            {
                "id": str(d.id),
                "when": d.created_at,
                "event": d.event,
                "target": d.target,
                "attempt": str(d.attempt),
                "status": d.status,
                "detail": d.detail,
            }
            for d in log
        ],
    }


class NotificationsState(AuthState):
    nt_project_id: int = 0
    nt_project_name: str = ""
    nt_role: str = ""
    nt_rules: list[dict[str, str]] = []
    nt_log: list[dict[str, str]] = []
    nt_loading: bool = True
    nt_error: str = ""
    nt_notice: str = ""
    nt_action_error: str = ""
    nt_secret: str = ""
    nt_busy: bool = False

    @rx.var
    def can_manage(self) -> bool:
        return role_allows(self.nt_role, Action.notifications_manage)

    async def _show(self, actor: Actor, project_id: int) -> None:
        found = await asyncio.to_thread(page_view, actor, project_id)
        async with self:
            self.nt_project_name, self.nt_role = found["project"], found["role"]
            self.nt_rules, self.nt_log, self.nt_loading = found["rules"], found["log"], False

    @rx.event(background=True)
    async def load(self):
        async with self:
            project_id = project_from_path(self.router.url.path)
            if project_id != self.nt_project_id:
                self.nt_rules, self.nt_log, self.nt_role, self.nt_secret = [], [], "", ""
                self.nt_notice, self.nt_action_error = "", ""
            self.nt_project_id, self.nt_loading, self.nt_error = project_id or 0, True, ""
            token = self.token
        if not project_id:
            async with self:
                self.nt_loading, self.nt_error = False, "This address does not name a project."
            return
        try:
            actor = await asyncio.to_thread(web_actor, token)
            await self._show(actor, project_id)
        except SessionEnded:
            async with self:
                self.nt_loading = False
                return login_redirect(self.router.url.path)
        except DomainError as exc:
            async with self:
                self.nt_loading, self.nt_error = False, error_message(exc)

    async def _act(self, work: Any, notice: str) -> None:
        async with self:
            if self.nt_busy:
                return
            self.nt_busy, self.nt_notice, self.nt_action_error = True, "", ""
            token, project_id = self.token, self.nt_project_id
        try:
            actor = await asyncio.to_thread(web_actor, token)
            result = await work(actor, project_id)
            await self._show(actor, project_id)
        except DomainError as exc:
            async with self:
                self.nt_busy, self.nt_action_error = False, error_message(exc)
            return
        async with self:
            self.nt_busy, self.nt_notice = False, notice
            if isinstance(result, str):
                self.nt_secret = result

    @rx.event(background=True)
    async def add_rule(self, form: dict[str, Any]):
        async def work(actor: Actor, project_id: int) -> str:
            request = rule_request(form)
            created = await asyncio.to_thread(
                notifications.create_rule, actor, project_id=project_id, request=request
            )
            return created.secret

        await self._act(work, "Rule added.")

    @rx.event(background=True)
    async def remove_rule(self, rule_id: str):
        async def work(actor: Actor, project_id: int) -> None:
            await asyncio.to_thread(
                notifications.delete_rule, actor, project_id=project_id, rule_id=int(rule_id)
            )

        await self._act(work, "Rule removed.")

    @rx.event(background=True)
    async def send_test(self, rule_id: str):
        async def work(actor: Actor, project_id: int) -> None:
            await notifications.send_test(actor, project_id=project_id, rule_id=int(rule_id))

        await self._act(work, "Test queued: its attempts appear in the delivery log below.")

    @rx.event(background=True)
    async def refresh_log(self):
        async with self:
            token, project_id = self.token, self.nt_project_id
        try:
            actor = await asyncio.to_thread(web_actor, token)
            await self._show(actor, project_id)
        except DomainError as exc:
            async with self:
                self.nt_action_error = error_message(exc)
