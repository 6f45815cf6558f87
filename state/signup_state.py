"""The sign-up page (`/signup`): self-service accounts, when a platform admin has left them on."""

from __future__ import annotations

import asyncio
from typing import Any

import reflex as rx

from services.actions import accounts
from services.actions.core import Actor
from services.errors import DomainError
from state.auth_state import AuthState, error_message


class SignupState(AuthState):
    signup_enabled: bool = True
    signup_loaded: bool = False
    signup_error: str = ""
    signup_busy: bool = False

    @rx.event
    async def load_signup(self):
        self.signup_error = ""
        self.signup_enabled = await asyncio.to_thread(accounts.signup_open)
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
            actor = Actor.anonymous(channel="web", source_ip=self._client_ip())
        try:
            token = await asyncio.to_thread(
                lambda: accounts.sign_up_web(actor, username=username, password=password, email=email)
            )
        except DomainError as exc:
            async with self:
                self.signup_busy, self.signup_error = False, error_message(exc)
            return
        async with self:
            self.token, self.signup_busy = token, False
        return rx.redirect("/")
