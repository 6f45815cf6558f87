"""Sign-in, sign-out and the signed-in user; every page state inherits from AuthState."""

from __future__ import annotations

from urllib.parse import quote, urlencode

import reflex as rx
from sqlmodel import Session

from components import tokens
from services.actions.core import Actor, web_user
from services.domain import auth, oidc
from services.domain import tokens as credentials
from services.domain.auth import safe_next
from services.domain.models import User
from services.errors import DomainError, Unauthorized
from services.infra.db import session_scope


def resolve_user(session: Session, token: str) -> User | None:
    """The user an opaque token belongs to, or None when it is missing, expired or revoked."""
    if not token:
        return None
    try:
        return credentials.user_for_session(session, token)
    except Unauthorized:
        return None


def login_redirect(path: str) -> rx.event.EventSpec:
    return rx.redirect(f"/login?next={quote(path or '/', safe='/')}")


class AuthState(rx.State):
    # The opaque API token (only its hash is in the database). `sync` signs out other tabs too.
    token: str = rx.LocalStorage("", name="vtp_token", sync=True)

    user_id: int = 0
    username: str = ""
    avatar_name: str = ""
    badge_color: str = tokens.PRIMARY

    login_error: str = ""
    signing_in: bool = False
    # "Sign in with …" shows only when an OpenID Connect provider is configured.
    sso_name: str = ""
    sso_href: str = ""

    @rx.var
    def signed_in(self) -> bool:
        return self.user_id > 0

    def _remember(self, user: User | None) -> None:
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
        return found.actor

    def _current_user(self, session: Session) -> User | None:
        """Resolve the token and refresh the displayed user (call inside a state lock)."""
        user = resolve_user(session, self.token)
        self._remember(user)
        return user

    @rx.event
    def sign_in(self, form_data: dict[str, str]):
        username = (form_data.get("username") or "").strip()
        password = form_data.get("password") or ""
        if not username or not password:
            self.login_error = "Enter your username and password."
            return
        try:
            with session_scope() as session:
                user = auth.authenticate(session, username=username, password=password)
                token = credentials.issue_session(session, user=user)
                self._remember(user)
        except DomainError as exc:
            self.login_error = exc.message
            return
        self.token = token
        self.login_error = ""
        return rx.redirect(safe_next(self.router.url.query_parameters.get("next")))

    @rx.event
    def sign_out(self):
        if self.token:
            with session_scope() as session:
                credentials.revoke_session(session, self.token)
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
        with session_scope() as session:
            if code := query.get("sso"):
                try:
                    user, self.token = credentials.redeem_handoff(session, code)
                except DomainError as exc:
                    self.login_error = exc.message
                    return
                self._remember(user)
                return rx.redirect(target)
            user = self._current_user(session)
        if user is not None:
            return rx.redirect(target)
