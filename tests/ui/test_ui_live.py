"""Live pages in real headless Chromium: a pushed point shows without a reload, and a dropped
connection is shown as such and then caught up.

The job is synthetic (a running row fed by signed epoch callbacks through the real endpoint), so the
test controls exactly when each epoch arrives. The browser's websocket is routed through Playwright
(`route_web_socket`), which lets the test cut it and refuse reconnects for a while, as a network
outage would.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest
from playwright.sync_api import Browser, Page, WebSocketRoute

from components.connection import LOST_MESSAGE
from tests.utils.browser import VIEWPORT, sign_in
from tests.utils.live_jobs import epoch_event, insert_running_job, post_callback, stack_database
from tests.utils.stack import Api, StackProcess

pytestmark = pytest.mark.ui

EPOCHS = 10


class Outage:
    """Routes the page's Reflex websocket; `cut()` closes it and refuses reconnects until `end()`."""

    def __init__(self) -> None:
        self.down = False
        self.open: list[WebSocketRoute] = []

    def route(self, ws: WebSocketRoute) -> None:
        if self.down:
            # Accepted, then closed before the handshake: the page sees a failed reconnect, as when the
            # server is unreachable.
            ws.connect_to_server().close()
            return
        ws.connect_to_server()
        self.open.append(ws)

    def cut(self) -> None:
        self.down = True
        for ws in self.open:
            ws.close()
        self.open.clear()

    def end(self) -> None:
        self.down = False


@pytest.fixture()
def synthetic_job(stack: StackProcess, api: Api) -> tuple[int, str]:
    pid = api.project_id()
    with stack_database(stack):
        return insert_running_job(pid, api.datasets(pid)[-1]["id"], stack.username, EPOCHS)


@pytest.fixture()
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport=VIEWPORT)
    yield context.new_page()
    context.close()


def _points(page: Page, n: int) -> None:
    page.wait_for_function(
        f"Number(document.querySelector('#metrics-chart')?.dataset.points) === {n}", timeout=20_000
    )


def test_a_dropped_connection_is_shown_and_the_page_catches_up(
    page: Page, stack: StackProcess, synthetic_job: tuple[int, str]
) -> None:
    job_id, secret = synthetic_job
    outage = Outage()
    page.route_web_socket(re.compile(r".*/_event.*"), outage.route)
    sign_in(page, stack, f"/jobs/{job_id}")
    page.wait_for_selector("#metrics-chart")
    with httpx.Client(timeout=30) as http:
        # Pushed, not polled: the point shows within the wait, without a reload.
        post_callback(http, stack.api_url, job_id, secret, epoch_event(1, EPOCHS))
        _points(page, 1)
        assert page.locator("#connection-lost").count() == 0

        outage.cut()
        banner = page.wait_for_selector("#connection-lost", timeout=15_000)
        assert banner is not None and LOST_MESSAGE in banner.inner_text()
        # Epochs that arrive meanwhile cannot reach the page: it keeps the old point, marked as stale.
        post_callback(http, stack.api_url, job_id, secret, epoch_event(2, EPOCHS))
        post_callback(http, stack.api_url, job_id, secret, epoch_event(3, EPOCHS))
        page.wait_for_timeout(1_500)
        assert page.get_attribute("#metrics-chart", "data-points") == "1"
        assert page.locator("#connection-lost").count() == 1

        outage.end()
        # Reconnected: the banner goes and the page catches up on what it missed.
        page.wait_for_selector("#connection-lost", state="detached", timeout=20_000)
        _points(page, 3)
        post_callback(http, stack.api_url, job_id, secret, epoch_event(4, EPOCHS))
        _points(page, 4)


def test_a_silent_trainer_is_shown_without_any_notice(
    page: Page, stack: StackProcess, synthetic_job: tuple[int, str]
) -> None:
    """Nothing is announced while a trainer is silent, yet the page must say it went quiet: the
    watcher's periodic look recomputes the staleness from what it last read."""
    job_id, secret = synthetic_job
    sign_in(page, stack, f"/jobs/{job_id}")
    page.wait_for_selector("#metrics-chart")
    with httpx.Client(timeout=30) as http:
        post_callback(http, stack.api_url, job_id, secret, epoch_event(1, EPOCHS))
        _points(page, 1)
    assert page.locator("#job-stale").count() == 0
    # Heard just now; stale after STALE_AFTER_S (15 s), seen at the next look (every 15 s).
    banner = page.wait_for_selector("#job-stale", timeout=40_000)
    assert banner is not None and "No update from the trainer" in banner.inner_text()
    with httpx.Client(timeout=30) as http:  # heard again: the warning goes with the new point
        post_callback(http, stack.api_url, job_id, secret, epoch_event(2, EPOCHS))
    _points(page, 2)
    page.wait_for_selector("#job-stale", state="detached", timeout=10_000)


def test_tags_set_on_the_job_page_filter_the_run_list(
    page: Page, stack: StackProcess, api: Api, synthetic_job: tuple[int, str]
) -> None:
    job_id, _secret = synthetic_job
    sign_in(page, stack, f"/jobs/{job_id}")
    page.fill("#tags-input", "baseline  ui-check")
    page.click("#save-tags")
    page.wait_for_function("document.querySelector('#tags-message')?.innerText === 'Tags saved'")
    assert page.inner_text("#job-tags").strip().endswith("baseline ui-check")
    page.goto(f"{stack.web_url}/projects/{api.project_id()}/compare")
    page.fill("#run-search", "tag:ui-check")
    page.wait_for_function(
        "document.querySelectorAll('#runs-table [data-run-id]').length === 1"
        f" && document.querySelector('#runs-table [data-run-id]').dataset.runId === '{job_id}'"
    )
    page.fill("#run-search", "metrics.map50_95>")
    page.wait_for_selector("#compare-error")
    assert "needs a value" in page.inner_text("#compare-error")
