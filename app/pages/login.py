"""/login: username + password form."""

from __future__ import annotations

import reflex as rx

from components import tokens
from components.layout import auth_shell, field
from state.auth_state import AuthState


def _input(id_: str, type_: str, autocomplete: str) -> rx.Component:
    return rx.input(
        id=id_,
        name=id_,
        type=type_,
        auto_complete=autocomplete,
        required=True,
        size="3",
        width="100%",
    )


def login_page() -> rx.Component:
    return auth_shell(
        "Vision Training",
        rx.text("Sign in to your projects.", color=tokens.TEXT_MUTED),
        rx.form(
            rx.vstack(
                field("Username", _input("username", "text", "username"), html_for="username"),
                field(
                    "Password",
                    _input("password", "password", "current-password"),
                    html_for="password",
                ),
                rx.cond(
                    AuthState.login_error != "",
                    rx.callout(
                        AuthState.login_error,
                        icon="triangle_alert",
                        color_scheme="red",
                        role="alert",
                        id="login-error",
                        width="100%",
                    ),
                ),
                rx.button(
                    "Sign in",
                    type="submit",
                    size="3",
                    width="100%",
                    id="sign-in",
                    background_color=tokens.PRIMARY,
                    color=tokens.PRIMARY_TEXT,
                ),
                spacing="4",
                align="stretch",
                width="100%",
            ),
            on_submit=AuthState.sign_in,
            reset_on_submit=False,
            width="100%",
            aria_label="Sign in",
        ),
        rx.text(
            "New here? ",
            rx.link("Create an account", href="/signup", color=tokens.PRIMARY, id="signup-link"),
            size="2",
        ),
        max_width="380px",
    )
