"""The account page (`/account`): profile (initials, badge colour), password, personal API tokens."""

from __future__ import annotations

import asyncio
from typing import Any

import reflex as rx

from services.actions import accounts, notifications
from services.actions.core import SessionEnded, web_actor
from services.errors import DomainError, InvalidInput
from state.auth_state import AuthState, error_message, login_redirect
from state.formatting import format_time

# Badge colours offered by the picker; each passes WCAG AA with white initials.
BADGE_COLOURS = ["#1d4ed8", "#7c3aed", "#be185d", "#b91c1c", "#b45309", "#047857", "#0f766e", "#334155"]


def account_view(view: accounts.AccountView) -> dict[str, Any]:
    return {
        "avatar_name": view.user.avatar_name,
        "badge_color": view.user.badge_color,
        "email": view.email,
        "tokens": [
            {
                "id": str(t.id),
                "name": t.name,
                "created": format_time(t.created_at),
                "expires": format_time(t.expires_at),
                "last_used": format_time(t.last_used_at) or "never",
            }
            for t in view.tokens
        ],
    }


def _load(token: str) -> dict[str, Any]:
    actor = web_actor(token)
    view = account_view(accounts.account(actor))
    items, own_jobs = notifications.my_notifications(actor)
    view["notify_own_jobs"] = own_jobs
    view["inbox"] = [
        {
            "id": str(n.id),
            "title": n.title,
            "link": n.link,
            "when": n.created_at,
            "unread": "" if n.read else "yes",
        }
        for n in items
    ]
    return view


class AccountState(AuthState):
    ac_loading: bool = True
    ac_email: str = ""
    ac_tokens: list[dict[str, str]] = []
    profile_notice: str = ""
    profile_error: str = ""
    password_notice: str = ""
    password_error: str = ""
    token_error: str = ""
    new_token: str = ""
    notify_own_jobs: bool = True
    inbox: list[dict[str, str]] = []

    async def _reload(self, token: str) -> bool:
        try:
            view = await asyncio.to_thread(_load, token)
        except SessionEnded:
            return False
        async with self:
            self.avatar_name, self.badge_color = view["avatar_name"], view["badge_color"]
            self.ac_email, self.ac_tokens, self.ac_loading = view["email"], view["tokens"], False
            self.notify_own_jobs, self.inbox = view["notify_own_jobs"], view["inbox"]
            self.unread_notifications = sum(1 for n in view["inbox"] if n["unread"])
        return True

    @rx.event(background=True)
    async def load(self):
        async with self:
            self.ac_loading, self.new_token = True, ""
            self.profile_notice = self.profile_error = self.password_notice = self.password_error = ""
            self._refresh_user()
            token = self.token
        if not await self._reload(token):
            async with self:
                return login_redirect(self.router.url.path)

    @rx.event
    def set_badge_preview(self, colour: str):
        """Preview only (nothing is saved until Save profile)."""
        self.badge_color = colour

    @rx.event(background=True)
    async def save_profile(self, form: dict[str, Any]):
        async with self:
            token = self.token
            self.profile_notice = self.profile_error = ""
        avatar_name, badge_color = str(form.get("avatar_name") or ""), str(form.get("badge_color") or "")
        try:
            actor = await asyncio.to_thread(web_actor, token)
            await asyncio.to_thread(
                lambda: accounts.update_profile(actor, avatar_name=avatar_name, badge_color=badge_color)
            )
        except DomainError as exc:
            async with self:
                self.profile_error = error_message(exc)
            return
        await self._reload(token)
        async with self:
            self.profile_notice = "Profile saved."

    @rx.event(background=True)
    async def change_password(self, form: dict[str, Any]):
        current, new = str(form.get("current_password") or ""), str(form.get("new_password") or "")
        async with self:
            self.password_notice = self.password_error = ""
            token = self.token
            if new != str(form.get("confirm_password") or ""):
                self.password_error = "The new passwords differ: type the same new password twice."
                return
        try:
            actor = await asyncio.to_thread(web_actor, token)
            fresh = await asyncio.to_thread(
                lambda: accounts.change_password(
                    actor, current_password=current, new_password=new, new_web_session=True
                )
            )
        except DomainError as exc:
            async with self:
                self.password_error = error_message(exc)
            return
        async with self:
            self.token = fresh
            self.password_notice = "Password changed. Your other sessions and API sign-ins were signed out."

    @rx.event(background=True)
    async def create_token(self, form: dict[str, Any]):
        async with self:
            self.token_error, self.new_token = "", ""
            token = self.token
        days_text, name = str(form.get("days") or "90").strip(), str(form.get("name") or "")
        try:
            if not days_text.isdigit():
                raise InvalidInput("Days must be a whole number")
            actor = await asyncio.to_thread(web_actor, token)
            created = await asyncio.to_thread(
                lambda: accounts.create_token(actor, name=name, expires_in_days=int(days_text))
            )
        except DomainError as exc:
            async with self:
                self.token_error = error_message(exc)
            return
        await self._reload(token)
        async with self:
            self.new_token = created.token

    @rx.event(background=True)
    async def revoke(self, token_id: str):
        async with self:
            self.token_error = ""
            token = self.token
        try:
            actor = await asyncio.to_thread(web_actor, token)
            await asyncio.to_thread(lambda: accounts.revoke_token(actor, token_id=int(token_id)))
        except DomainError as exc:
            async with self:
                self.token_error = error_message(exc)
            return
        await self._reload(token)

    @rx.event(background=True)
    async def set_notify_own_jobs(self, enabled: bool):
        """Switch notifications about the user's own jobs (in-app list and e-mail) on or off."""
        async with self:
            token = self.token
        try:
            actor = await asyncio.to_thread(web_actor, token)
            await asyncio.to_thread(
                lambda: notifications.set_own_jobs_notifications(actor, enabled=bool(enabled))
            )
        except DomainError as exc:
            async with self:
                self.profile_error = error_message(exc)
            return
        await self._reload(token)

    @rx.event(background=True)
    async def mark_all_read(self):
        async with self:
            token = self.token
        try:
            actor = await asyncio.to_thread(web_actor, token)
            await asyncio.to_thread(notifications.mark_my_notifications_read, actor)
        except DomainError:
            return
        await self._reload(token)
