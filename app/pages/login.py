"""/login: username + password form."""

from __future__ import annotations

import reflex as rx

from components import tokens
from components.layout import auth_input, auth_shell
from components.project_nav import primary_button
from state.auth_state import AuthState


def login_page() -> rx.Component:
    return auth_shell(
        "Vision Training",
        rx.text("Sign in to your projects.", color=tokens.TEXT_MUTED),
        rx.form(
            rx.vstack(
                auth_input("username", "Username", "text", "username"),
                auth_input("password", "Password", "password", "current-password"),
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
                # Enabled once the page's load events have run: a sign-in sent earlier could
                # have its error cleared by the load handler that follows it.
                primary_button(
                    "Sign in",
                    type="submit",
                    size="3",
                    width="100%",
                    id="sign-in",
                    loading=~rx.State.is_hydrated,
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
        rx.cond(
            AuthState.sso_name != "",
            rx.button(
                rx.el.a(
                    rx.icon("key_round", size=16, aria_hidden="true"),
                    "Sign in with ",
                    AuthState.sso_name,
                    href=AuthState.sso_href,
                    id="sso-sign-in",
                    # Reflex renders an in-site href as a router link; this one must load from the server.
                    custom_attrs={"reloadDocument": True},
                ),
                as_child=True,
                variant="outline",
                size="3",
                width="100%",
            ),
        ),
        rx.text(
            "New here? ",
            rx.link("Create an account", href="/signup", color=tokens.PRIMARY, id="signup-link"),
            size="2",
        ),
        max_width="380px",
    )
