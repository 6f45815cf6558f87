"""The sign-up page (`/signup`)."""

from __future__ import annotations

import reflex as rx

from app.pages.shared import maybe_error
from components import tokens
from components.layout import auth_input, auth_shell
from components.project_nav import (
    loading_state,
    primary_button,
)
from state.signup_state import SignupState


def signup_page() -> rx.Component:
    S = SignupState
    form = rx.form(
        rx.vstack(
            auth_input("username", "Username (3–64 letters, digits, - or _)", "text", "username"),
            auth_input("email", "Email (optional)", "email", "email", required=False),
            auth_input("password", "Password (at least 8 characters)", "password", "new-password"),
            auth_input("confirm", "Password again", "password", "new-password"),
            maybe_error(S.signup_error, "signup-error"),
            primary_button(
                "Create account", type="submit", size="3", width="100%", id="sign-up", disabled=S.signup_busy
            ),
            spacing="4",
            align="stretch",
            width="100%",
        ),
        on_submit=S.sign_up,
        reset_on_submit=False,
        aria_label="Create an account",
        width="100%",
    )
    return auth_shell(
        "Create an account",
        rx.cond(
            ~S.signup_loaded,
            loading_state("Loading…", "signup-loading"),
            rx.cond(
                S.signup_enabled,
                form,
                rx.callout(
                    "Sign-up is switched off on this platform. Ask an administrator to create an "
                    "account "
                    "for you or to switch sign-up on.",
                    icon="lock",
                    color_scheme="gray",
                    id="signup-closed",
                ),
            ),
        ),
        rx.text(
            "Already have an account? ",
            rx.link("Sign in", href="/login", color=tokens.PRIMARY, underline="always"),
        ),
        max_width="420px",
    )
