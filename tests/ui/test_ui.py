"""The web app in real headless Chromium against the whole running stack."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page

from tests.utils.browser import VIEWPORT, sign_in, submit_login
from tests.utils.stack import Api, StackProcess

pytestmark = pytest.mark.ui


def points(page: Page) -> int:
    return int(page.get_attribute("#metrics-chart", "data-points") or 0)


def test_wrong_password_shows_a_message(browser: Browser, stack: StackProcess) -> None:
    page = browser.new_page()
    page.goto(stack.web_url + "/login")
    submit_login(page, stack.username, "not-the-password")
    page.wait_for_selector("#login-error")
    assert "Wrong username or password" in page.inner_text("#login-error")


def test_job_page_chart_grows_while_training(
    browser: Browser, stack: StackProcess, api: Api, output_dir: Path
) -> None:
    pid = api.project_id()
    sample = api.datasets(pid)[-1]
    job = api.start_job(pid, sample["id"], epochs=10, imgsz=96)
    page = browser.new_page(viewport=VIEWPORT)
    sign_in(page, stack, f"/jobs/{job['id']}")
    page.wait_for_url(f"**/jobs/{job['id']}")
    page.wait_for_selector("#metrics-chart")

    seen = [points(page)]
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and page.get_attribute(
        "#job-state .status-indicator", "data-state"
    ) not in {"succeeded", "failed", "cancelled"}:
        current = points(page)
        if current != seen[-1]:
            seen.append(current)
            if len(seen) == 3:
                page.screenshot(path=str(output_dir / "job-page-live.png"), full_page=True)
        time.sleep(0.25)
    # No reload happened: the same page saw the count grow one epoch after another.
    increases = [b for a, b in zip(seen, seen[1:], strict=False) if b > a]
    assert len(increases) >= 3, f"chart point counts seen: {seen}"
    page.wait_for_function("document.querySelector('#metrics-chart').dataset.points === '10'", timeout=60_000)
    assert page.get_attribute("#job-state .status-indicator", "data-state") == "succeeded"
    assert page.locator("#metrics-chart .main-svg").count() >= 1
    page.screenshot(path=str(output_dir / "job-page-finished.png"), full_page=True)


def test_dashboard_lists_projects_datasets_and_jobs(
    browser: Browser, stack: StackProcess, output_dir: Path
) -> None:
    page = browser.new_page(viewport=VIEWPORT)
    sign_in(page, stack)
    page.wait_for_selector("#datasets-table")
    assert "shapes (sample)" in page.inner_text("#datasets-table")
    page.wait_for_selector("#jobs-table tr[data-job-id]")
    page.screenshot(path=str(output_dir / "dashboard.png"), full_page=True)


def test_single_sign_on_through_the_identity_provider(browser: Browser, stack: StackProcess) -> None:
    """The login page's SSO button, the provider's own sign-in and consent pages, and back, signed in."""
    page = browser.new_page(viewport=VIEWPORT)
    page.goto(stack.web_url + "/login?next=/account")
    page.wait_for_selector("#sso-sign-in >> text=Sign in with Test IdP")
    page.click("#sso-sign-in")
    page.wait_for_url(stack.sso_issuer + "/interaction/**")
    page.fill("input[name=login]", "dana")
    page.fill("input[name=password]", "anything")
    page.click("button[type=submit]")
    page.click("button:has-text('Continue')")  # the provider's consent page
    page.wait_for_url(stack.web_url + "/account")
    page.wait_for_selector("#current-user >> text=dana")
