"""The project notifications page in real headless Chromium: an admin adds a webhook rule, sends a
test, and sees the delivery in the log (and the webhook receives it)."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest
from playwright.sync_api import Browser

from tests.ui.test_ui_datasets import open_as
from tests.utils import sinks
from tests.utils.browser import wait_hydrated
from tests.utils.stack import Api, StackProcess

pytestmark = pytest.mark.ui


def test_add_a_webhook_rule_send_a_test_and_see_the_delivery(
    browser: Browser, stack: StackProcess, api: Api, output_dir: Path
) -> None:
    project = api.http.post("/projects", json={"name": f"alerts-{uuid.uuid4().hex[:6]}"}).json()["id"]
    with sinks.http_sink() as sink:
        page = open_as(browser, stack, f"/projects/{project}/notifications")
        page.wait_for_selector("#rules-empty")
        wait_hydrated(page, "#rule-submit")
        page.select_option("#rule-kind", "webhook")
        page.fill("#rule-target", sink.url + "/hooks/secret-path-1234")
        page.check("[id='event-job.failed']")
        page.check("[id='event-job.succeeded']")
        page.click("#rule-submit")
        page.wait_for_selector("#webhook-secret")
        row = page.locator("#rules-table tr[data-rule]")
        row.wait_for()
        assert "secret-path" not in row.inner_text()  # the URL's secret part is masked
        rule_id = row.get_attribute("data-rule")
        page.click(f"#test-{rule_id}")
        page.wait_for_selector("#notifications-notice >> text=Test queued")
        deadline = time.monotonic() + 30
        while page.locator("#delivery-log tr[data-status='sent']").count() == 0:
            assert time.monotonic() < deadline, "no sent delivery in the log after 30s"
            page.click("#refresh-log")
            page.wait_for_timeout(500)
        assert "test" in page.locator("#delivery-log tr[data-status='sent']").first.inner_text()
        page.screenshot(path=str(output_dir / "notifications.png"), full_page=True)
        assert [r.headers["x-vtp-event"] for r in sink.at("/hooks/secret-path-1234")] == ["test"]
        page.close()


def test_a_user_switches_notifications_for_their_own_jobs(
    browser: Browser, stack: StackProcess, api: Api, output_dir: Path
) -> None:
    page = open_as(browser, stack, "/account")
    switch = page.locator("#notify-own-jobs")
    switch.wait_for()
    wait_hydrated(page, "#notify-own-jobs")
    page.wait_for_selector("#notification-bell")
    assert switch.get_attribute("aria-checked") == "true"
    page.screenshot(path=str(output_dir / "account-notifications.png"), full_page=True)
    try:
        switch.click()
        page.wait_for_selector("#notify-own-jobs[aria-checked='false']")
        assert api.http.get("/me/notifications").json()["own_jobs"] is False
    finally:
        api.http.put("/me/notification-settings", json={"own_jobs": True}).raise_for_status()
    page.close()
