"""Sign-in, sign-out and the signed-in user; every page state inherits from AuthState.

Handlers call services.actions.accounts with an actor: anonymous for signing in (with the
browser's address, so the per-IP lockout counts web sign-ins too), `web_actor(token)` otherwise.
"""

from __future__ import annotations

from contextlib import suppress
from urllib.parse import quote, urlencode

import reflex as rx

from components import tokens
from services.actions import accounts
from services.actions.core import Actor, optional_web_actor, web_user
from services.domain import oidc
from services.domain.auth import safe_next
from services.domain.schemas import UserPublic
from services.errors import DomainError


def error_message(exc: Exception) -> str:
    """What a page shows for a refused or failed action: the error's own sentence."""
    return getattr(exc, "message", None) or str(exc) or "Something went wrong; try again."


def login_redirect(path: str) -> rx.event.EventSpec:
    return rx.redirect(f"/login?next={quote(path or '/', safe='/')}")


class AuthState(rx.State):
    # The opaque API token (only its hash is in the database). `sync` signs out other tabs too.
    token: str = rx.LocalStorage("", name="vtp_token", sync=True)

    user_id: int = 0
    username: str = ""
    avatar_name: str = ""
    badge_color: str = tokens.PRIMARY
    unread_notifications: int = 0  # the header's bell (services.domain.notifications)

    login_error: str = ""
    signing_in: bool = False
    # "Sign in with …" shows only when an OpenID Connect provider is configured.
    sso_name: str = ""
    sso_href: str = ""

    @rx.var
    def signed_in(self) -> bool:
        return self.user_id > 0

    def _remember(self, user: UserPublic | None) -> None:
        if user is None:
            self.user_id, self.username, self.avatar_name, self.badge_color = 0, "", "", tokens.PRIMARY
        else:
            assert user.id is not None
            self.user_id, self.username = user.id, user.username
            self.avatar_name, self.badge_color = user.avatar_name, user.badge_color

    def _refresh_user(self) -> Actor | None:
        """Resolve the token (one quick read) and refresh the displayed user; None when signed out.

        Blocking: background events call it outside `async with self` or accept the short read.
        """
        found = web_user(self.token)
        if found is None:
            self._remember(None)
            return None
        assert found.actor.user_id is not None
        self.user_id, self.username = found.actor.user_id, found.actor.username
        self.avatar_name, self.badge_color = found.avatar_name, found.badge_color
        self.unread_notifications = found.unread
        return found.actor

    def _client_ip(self) -> str:
        return self.router.session.client_ip or ""

    @rx.event
    def sign_in(self, form_data: dict[str, str]):
        username = (form_data.get("username") or "").strip()
        password = form_data.get("password") or ""
        if not username or not password:
            self.login_error = "Enter your username and password."
            return
        actor = Actor.anonymous(channel="web", source_ip=self._client_ip())
        try:
            user, token = accounts.sign_in_web(actor, username=username, password=password)
        except DomainError as exc:
            self.login_error = exc.message
            return
        self._remember(user)
        self.token = token
        self.login_error = ""
        return rx.redirect(safe_next(self.router.url.query_parameters.get("next")))

    @rx.event
    def sign_out(self):
        actor = optional_web_actor(self.token)
        if actor is not None:
            with suppress(DomainError):  # the session ended meanwhile: signed out either way
                accounts.sign_out(actor, session_token=self.token)
        self.token = ""
        self._remember(None)
        return rx.redirect("/login")

    @rx.event
    def load_login_page(self):
        """On /login: go straight on when the stored token is still valid, or finish single sign-on."""
        query = self.router.url.query_parameters
        target = safe_next(query.get("next"))
        self.login_error = oidc.MESSAGES.get(query.get("sso_error", ""), "")
        self.sso_name = oidc.display_name() if oidc.enabled() else ""
        self.sso_href = f"{oidc.LOGIN_PATH}?{urlencode({'next': target})}"
        if code := query.get("sso"):
            actor = Actor.anonymous(channel="web", source_ip=self._client_ip())
            try:
                user, self.token = accounts.redeem_sso_handoff(actor, code=code)
            except DomainError as exc:
                self.login_error = exc.message
                return
            self._remember(user)
            return rx.redirect(target)
        if self._refresh_user() is not None:
            return rx.redirect(target)
