"""A sweep started from the train form's Sweep mode in real headless Chromium, watched on the
sweep page and cancelled there (no trial needs to finish)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page

from tests.utils.browser import VIEWPORT, sign_in, wait_hydrated
from tests.utils.stack import Api, StackProcess

pytestmark = [pytest.mark.sweeps, pytest.mark.ui]


@pytest.fixture(scope="module")
def page(browser: Browser, stack: StackProcess) -> Iterator[Page]:
    page = sign_in(browser.new_page(viewport=VIEWPORT), stack)
    yield page
    page.close()


def test_sweep_mode_starts_a_sweep_whose_page_cancels_it(
    page: Page, stack: StackProcess, api: Api, output_dir: Path
) -> None:
    pid = api.project_id()
    page.goto(f"{stack.web_url}/projects/{pid}/train?mode=sweep")
    page.wait_for_selector("#hp-lr0-search")
    wait_hydrated(page, "#start-training")
    assert page.inner_text("#start-training").strip() == "Start sweep"
    # A range on a text setting is refused next to the field, before anything is saved.
    page.fill("#hp-optimizer-search", "a..b")
    page.click("#start-training")
    page.wait_for_selector("#hp-optimizer-error")
    assert "a range needs a number setting" in page.inner_text("#hp-optimizer-error")
    page.fill("#hp-optimizer-search", "")
    page.fill("#hp-epochs", "1")
    page.fill("#hp-imgsz", "32")
    page.fill("#hp-batch", "8")
    page.fill("#hp-lr0-search", "0.001..0.01 log")
    page.fill("#objective", "map50")
    page.fill("#n-trials", "3")
    page.fill("#job-name", "ui sweep")
    page.screenshot(path=str(output_dir / "train-form-sweep.png"), full_page=True)
    page.click("#start-training")
    page.wait_for_url("**/sweeps/*", timeout=30_000)
    sweep_id = int(page.url.rstrip("/").rsplit("/", 1)[-1])
    page.wait_for_selector("#sweep-settings")
    assert "maximize map50 · 3 trials, 1 at a time" in page.inner_text("#sweep-settings")
    assert "lr0" in page.inner_text("#search-space") and "(log)" in page.inner_text("#search-space")
    # The worker asks for the first trial; the page shows it without a reload (pushed).
    page.wait_for_selector("#trials-table [data-trial='0']", timeout=300_000)
    page.screenshot(path=str(output_dir / "sweep-running.png"), full_page=True)
    wait_hydrated(page, "#cancel-sweep")
    page.click("#cancel-sweep")
    page.wait_for_selector("#sweep-action-message")
    page.wait_for_function(
        "document.querySelector('main .status-indicator')?.dataset.state === 'cancelled'",
        timeout=30_000,
    )
    detail = api.http.get(f"/projects/{pid}/sweeps/{sweep_id}").raise_for_status().json()
    assert detail["state"] == "cancelled" and detail["name"] == "ui sweep"
    jobs = [j for j in api.http.get(f"/projects/{pid}/jobs").json() if j["sweep_id"] == sweep_id]
    assert jobs and all(j["state"] in {"cancelled", "dispatching", "running"} for j in jobs)
    # The project's sweeps list links to it.
    page.goto(f"{stack.web_url}/projects/{pid}/sweeps")
    page.wait_for_selector(f"#sweeps-table a[href='/sweeps/{sweep_id}']")
