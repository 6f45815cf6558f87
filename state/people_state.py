"""People pages: project members (`/projects/[project_id]/members`), sign-up (`/signup`),
account settings (`/account`) and platform administration (`/admin`).

Each blocking function resolves the user from the page token and leaves every decision to
services (projects.*, auth.*, tokens.*, audit.query behind require_platform_admin).
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

import reflex as rx
from sqlmodel import Session

from services.domain import audit, auth, projects, quotas, tokens
from services.domain.models import Project, Role, User
from services.domain.permissions import Action, require_platform_admin
from services.domain.schemas import QuotasPublic
from services.errors import DomainError, InvalidInput, Unauthorized
from services.infra.db import session_scope
from state.auth_state import AuthState, login_redirect, resolve_user
from state.formatting import format_time
from state.page_helpers import name_fields, project_path_ids, quota_input, role_allows

SIGNED_OUT = "Your session has ended: sign in again."
ROLES = [r.value for r in (Role.viewer, Role.member, Role.admin, Role.owner)]
AUDIT_PAGE = 50
# The quota form's labels; the service's messages name the API fields, the page names these.
QUOTA_LABELS = {
    "max_running_jobs": "Jobs running at once",
    "max_queued_jobs": "Jobs waiting in the queue",
    "max_gpus": "GPUs in use at once",
}


def _user(session: Session, token: str) -> User:
    user = resolve_user(session, token)
    if user is None:
        raise Unauthorized(SIGNED_OUT)
    return user


def _message(exc: Exception) -> str:
    return getattr(exc, "message", None) or str(exc) or "Something went wrong; try again."


def _role(value: str) -> Role:
    try:
        return Role(value)
    except ValueError as exc:
        raise InvalidInput(f"Unknown role {value!r}; choose one of {', '.join(ROLES)}") from exc


# --- members -------------------------------------------------------------------------------------


def member_rows(token: str, project_id: int) -> dict[str, Any]:
    """Members with their roles (viewer or higher), plus the caller's own role."""
    with session_scope() as session:
        user = _user(session, token)
        members = projects.list_members(session, user=user, project_id=project_id)
        mine = next((r for u, r in members if u.id == user.id), None)
        project = session.get(Project, project_id)
        return {
            "project": project.name if project else "",
            "role": mine.value if mine else "",
            "quotas": quota_view(quotas.get_quotas(session, user=user, project_id=project_id)),
            "rows": [
                {
                    "user_id": str(u.id),
                    "username": u.username,
                    "avatar_name": u.avatar_name,
                    "badge_color": u.badge_color,
                    "role": r.value,
                    "you": "yes" if u.id == user.id else "",
                }
                for u, r in members
            ],
        }


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


def save_project_quotas(
    token: str, project_id: int, max_running: str, max_queued: str, max_gpus: str | None = None
) -> dict[str, str]:
    """Set the quotas from the form's text (empty = no limit; `max_gpus` None = unchanged);
    services.domain.quotas decides and audits."""
    with session_scope() as session:
        user = _user(session, token)
        try:
            found = quotas.set_quotas(
                session,
                user=user,
                project_id=project_id,
                max_running_jobs=quota_input(max_running, field="max_running_jobs"),
                max_queued_jobs=quota_input(max_queued, field="max_queued_jobs"),
                max_gpus=quotas.UNCHANGED if max_gpus is None else quota_input(max_gpus, field="max_gpus"),
            )
        except InvalidInput as exc:
            raise InvalidInput(name_fields(exc.message, QUOTA_LABELS)) from exc
        return quota_view(found)


def invite_member(token: str, project_id: int, username: str, role: str) -> str:
    with session_scope() as session:
        user = _user(session, token)
        other, given = projects.add_member(
            session, user=user, project_id=project_id, username=username, role=_role(role)
        )
        return f"{other.username} joined as {given.value}."


def change_member_role(token: str, project_id: int, user_id: int, role: str) -> str:
    with session_scope() as session:
        user = _user(session, token)
        other, given = projects.change_role(
            session, user=user, project_id=project_id, user_id=user_id, role=_role(role)
        )
        return f"{other.username} is now {given.value}."


def remove_member(token: str, project_id: int, user_id: int) -> str:
    with session_scope() as session:
        user = _user(session, token)
        projects.remove_member(session, user=user, project_id=project_id, user_id=user_id)
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
            token = self.token
            with session_scope() as session:
                self._current_user(session)
        if not project_id:
            async with self:
                self.mb_loading, self.mb_error = False, "This address does not name a project."
            return
        try:
            found = await asyncio.to_thread(member_rows, token, project_id)
        except Unauthorized:
            async with self:
                self.mb_loading = False
                return login_redirect(self.router.url.path)
        except DomainError as exc:
            async with self:
                self.mb_loading = False
                self.mb_error = f"{_message(exc)}. Check the address, or ask a project admin to add you."
            return
        async with self:
            self.mb_rows, self.mb_role = found["rows"], found["role"]
            self.mb_project_name, self.mb_loading = found["project"], False
            self._show_quotas(found["quotas"])

    async def _run(self, fn: Any, *args: Any) -> None:
        async with self:
            if self.mb_busy:
                return
            self.mb_busy, self.mb_notice, self.mb_action_error = True, "", ""
            token, project_id = self.token, self.mb_project_id
        try:
            notice = await asyncio.to_thread(fn, token, project_id, *args)
        except DomainError as exc:
            async with self:
                self.mb_busy, self.mb_action_error = False, _message(exc)
            return
        try:
            found = await asyncio.to_thread(member_rows, token, project_id)
        except DomainError:
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
            view = await asyncio.to_thread(save_project_quotas, token, project_id, running, queued, gpus)
        except DomainError as exc:
            async with self:
                self.mb_quota_busy, self.mb_quota_error = False, _message(exc)
            return
        async with self:
            self.mb_quota_busy, self.mb_quota_notice = False, "Quotas saved."
            self._show_quotas(view)


# --- sign-up -------------------------------------------------------------------------------------


def signup_open() -> bool:
    with session_scope() as session:
        return auth.signup_enabled(session)


def sign_up_and_sign_in(username: str, password: str, email: str | None, source_ip: str) -> str:
    """Create the account (when sign-up is on) and return a web session token."""
    with session_scope() as session:
        user = auth.sign_up(session, username=username, password=password, email=email, source_ip=source_ip)
        return tokens.issue_session(session, user=user)


class SignupState(AuthState):
    signup_enabled: bool = True
    signup_loaded: bool = False
    signup_error: str = ""
    signup_busy: bool = False

    @rx.event
    async def load_signup(self):
        self.signup_error = ""
        self.signup_enabled = await asyncio.to_thread(signup_open)
        self.signup_loaded = True

    @rx.event(background=True)
    async def sign_up(self, form: dict[str, Any]):
        username = str(form.get("username") or "").strip()
        password, confirm = str(form.get("password") or ""), str(form.get("confirm") or "")
        email = str(form.get("email") or "").strip() or None
        async with self:
            if self.signup_busy:
                return
            if password != confirm:
                self.signup_error = "The two passwords differ: type the same password twice."
                return
            self.signup_busy, self.signup_error = True, ""
            ip = self.router.session.client_ip or ""
        try:
            token = await asyncio.to_thread(sign_up_and_sign_in, username, password, email, ip)
        except DomainError as exc:
            async with self:
                self.signup_busy, self.signup_error = False, _message(exc)
            return
        async with self:
            self.token, self.signup_busy = token, False
        return rx.redirect("/")


# --- account settings ----------------------------------------------------------------------------


def account_view(token: str) -> dict[str, Any]:
    with session_scope() as session:
        user = _user(session, token)
        return {
            "avatar_name": user.avatar_name,
            "badge_color": user.badge_color,
            "email": user.email or "",
            "tokens": [
                {
                    "id": str(t.id),
                    "name": t.name,
                    "created": format_time(t.created_at),
                    "expires": format_time(t.expires_at),
                    "last_used": format_time(t.last_used_at) or "never",
                }
                for t in tokens.list_personal_tokens(session, user=user)
            ],
        }


def save_profile(token: str, avatar_name: str, badge_color: str) -> None:
    with session_scope() as session:
        auth.update_profile(
            session, user=_user(session, token), avatar_name=avatar_name, badge_color=badge_color
        )


def change_password(token: str, current: str, new: str) -> str:
    """Change the password (which signs out every session) and return a fresh web session token."""
    with session_scope() as session:
        user = _user(session, token)
        auth.change_password(session, user=user, current_password=current, new_password=new)
    with session_scope() as session:
        return tokens.issue_session(session, user=session.get(User, user.id))


def create_token(token: str, name: str, days: int) -> str:
    with session_scope() as session:
        _row, secret = tokens.create_personal_token(
            session, user=_user(session, token), name=name, expires_in_days=days
        )
        return secret


def revoke_token(token: str, token_id: int) -> None:
    with session_scope() as session:
        tokens.revoke_personal_token(session, user=_user(session, token), token_id=token_id)


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

    async def _reload(self, token: str) -> bool:
        try:
            view = await asyncio.to_thread(account_view, token)
        except Unauthorized:
            return False
        async with self:
            self.avatar_name, self.badge_color = view["avatar_name"], view["badge_color"]
            self.ac_email, self.ac_tokens, self.ac_loading = view["email"], view["tokens"], False
        return True

    @rx.event(background=True)
    async def load(self):
        async with self:
            self.ac_loading, self.new_token = True, ""
            self.profile_notice = self.profile_error = self.password_notice = self.password_error = ""
            with session_scope() as session:
                self._current_user(session)
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
        try:
            await asyncio.to_thread(
                save_profile, token, str(form.get("avatar_name") or ""), str(form.get("badge_color") or "")
            )
        except DomainError as exc:
            async with self:
                self.profile_error = _message(exc)
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
            fresh = await asyncio.to_thread(change_password, token, current, new)
        except DomainError as exc:
            async with self:
                self.password_error = _message(exc)
            return
        async with self:
            self.token = fresh
            self.password_notice = "Password changed. Your other sessions and API sign-ins were signed out."

    @rx.event(background=True)
    async def create_token(self, form: dict[str, Any]):
        async with self:
            self.token_error, self.new_token = "", ""
            token = self.token
        days_text = str(form.get("days") or "90").strip()
        try:
            if not days_text.isdigit():
                raise InvalidInput("Days must be a whole number")
            secret = await asyncio.to_thread(create_token, token, str(form.get("name") or ""), int(days_text))
        except DomainError as exc:
            async with self:
                self.token_error = _message(exc)
            return
        await self._reload(token)
        async with self:
            self.new_token = secret

    @rx.event(background=True)
    async def revoke(self, token_id: str):
        async with self:
            self.token_error = ""
            token = self.token
        try:
            await asyncio.to_thread(revoke_token, token, int(token_id))
        except DomainError as exc:
            async with self:
                self.token_error = _message(exc)
            return
        await self._reload(token)


# --- platform administration ---------------------------------------------------------------------


def _admin(session: Session, token: str) -> User:
    user = _user(session, token)
    require_platform_admin(user)
    return user


def admin_overview(token: str) -> dict[str, Any]:
    with session_scope() as session:
        admin = _admin(session, token)
        return {
            "signup": auth.signup_enabled(session),
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
                    "you": "yes" if u.id == admin.id else "",
                }
                for u in auth.list_users(session, admin=admin, limit=500)
            ],
        }


def set_user_active(token: str, user_id: int, active: bool) -> None:
    with session_scope() as session:
        auth.update_user(session, admin=_user(session, token), user_id=user_id, is_active=active)


def set_signup(token: str, enabled: bool) -> None:
    with session_scope() as session:
        auth.set_signup_enabled(session, admin=_user(session, token), enabled=enabled)


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


def audit_rows(token: str, filters: dict[str, str], offset: int) -> list[dict[str, str]]:
    project = (filters.get("project_id") or "").strip()
    if project and not project.isdigit():
        raise InvalidInput("Project id must be a whole number")
    result = filters.get("result") or None
    if result not in (None, "ok", "denied", "failed"):
        raise InvalidInput("Result must be ok, denied or failed")
    with session_scope() as session:
        _admin(session, token)
        rows = audit.query(
            session,
            actor=(filters.get("actor") or "").strip() or None,
            action=(filters.get("action") or "").strip() or None,
            result=result,
            project_id=int(project) if project else None,
            since=parse_day(filters.get("since", "")),
            until=parse_day(filters.get("until", ""), end=True),
            offset=offset,
            limit=AUDIT_PAGE + 1,
        )
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
    audit_items: list[dict[str, str]] = []
    audit_filters: dict[str, str] = {}
    audit_offset: int = 0
    audit_more: bool = False
    audit_error: str = ""
    audit_loading: bool = False

    async def _load_users(self, token: str) -> None:
        try:
            overview = await asyncio.to_thread(admin_overview, token)
        except Unauthorized:
            async with self:
                self.ad_loading = False
            raise
        except DomainError as exc:
            async with self:
                self.ad_allowed, self.ad_loading, self.ad_error = False, False, _message(exc)
            return
        async with self:
            self.ad_allowed, self.ad_loading = True, False
            self.ad_users, self.ad_signup = overview["users"], overview["signup"]

    @rx.event(background=True)
    async def load(self):
        async with self:
            self.ad_loading, self.ad_error, self.ad_notice = True, "", ""
            with session_scope() as session:
                self._current_user(session)
            token = self.token
        try:
            await self._load_users(token)
        except Unauthorized:
            async with self:
                return login_redirect(self.router.url.path)
        async with self:
            allowed = self.ad_allowed
        if allowed:
            return AdminState.load_audit

    @rx.event(background=True)
    async def set_active(self, user_id: str, active: bool):
        async with self:
            token, self.ad_error, self.ad_notice = self.token, "", ""
        try:
            await asyncio.to_thread(set_user_active, token, int(user_id), bool(active))
        except DomainError as exc:
            async with self:
                self.ad_error = _message(exc)
            return
        await self._load_users(token)
        async with self:
            self.ad_notice = "Account " + (
                "activated." if active else "deactivated and signed out everywhere."
            )

    @rx.event(background=True)
    async def toggle_signup(self, enabled: bool):
        async with self:
            token, self.ad_error, self.ad_notice = self.token, "", ""
        try:
            await asyncio.to_thread(set_signup, token, bool(enabled))
        except DomainError as exc:
            async with self:
                self.ad_error = _message(exc)
            return
        await self._load_users(token)
        async with self:
            self.ad_notice = "Sign-up is " + ("on: anyone can create an account." if enabled else "off.")

    @rx.event
    def filter_audit(self, form: dict[str, Any]):
        keys = ("actor", "action", "result", "project_id", "since", "until")
        self.audit_filters = {k: str(form.get(k) or "") for k in keys}
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
            rows = await asyncio.to_thread(audit_rows, token, filters, offset)
        except DomainError as exc:
            async with self:
                self.audit_loading, self.audit_error = False, _message(exc)
            return
        async with self:
            self.audit_items, self.audit_more = rows[:AUDIT_PAGE], len(rows) > AUDIT_PAGE
            self.audit_loading = False


BADGE_COLOURS = ["#1d4ed8", "#7c3aed", "#be185d", "#b91c1c", "#b45309", "#047857", "#0f766e", "#334155"]
