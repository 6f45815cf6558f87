"""Headless Debian Chromium for UI tests (never `playwright install`) and a sign-in helper."""

from __future__ import annotations

from playwright.sync_api import Page

from tests.utils.stack import StackProcess

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORT = {"width": 1280, "height": 900}
# React attaches its props to a hydrated element; a click before that is a plain HTML form
# submit that Reflex never sees.
HYDRATED = (
    "s => { const el = document.querySelector(s);"
    " return !!el && Object.keys(el).some(k => k.startsWith('__reactProps')); }"
)


def wait_hydrated(page: Page, selector: str) -> None:
    page.wait_for_function(HYDRATED, arg=selector)


def submit_login(page: Page, username: str, password: str) -> None:
    wait_hydrated(page, "#sign-in")
    page.fill("#username", username)
    page.fill("#password", password)
    page.click("#sign-in")


def sign_in(page: Page, stack: StackProcess, path: str = "/", username: str = "", password: str = "") -> Page:
    """Open `path` signed out, sign in on the login page it redirects to, and land on `path`."""
    page.goto(stack.web_url + path)
    page.wait_for_url("**/login**")
    submit_login(page, username or stack.username, password or stack.password)
    page.wait_for_url(lambda url: path.rstrip("/") in url and "/login" not in url)
    return page
