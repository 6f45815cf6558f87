"""The seed's components in real headless Chromium against the whole running stack.

The projects home's cards, and a real one-epoch classification job (real digits, real training)
whose page must speak of loss and accuracy, not boxes and mAP, and whose one epoch is visible.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.datasets.factories import digits_imagefolder, zip_bytes
from tests.utils.browser import VIEWPORT, sign_in, wait_hydrated
from tests.utils.stack import Api, StackProcess

pytestmark = pytest.mark.ui


@pytest.fixture(scope="module")
def page(browser: Browser, stack: StackProcess) -> Iterator[Page]:
    page = browser.new_page(viewport=VIEWPORT)
    sign_in(page, stack)
    yield page
    page.close()


@pytest.fixture(scope="module")
def classify_job(api: Api) -> dict[str, Any]:
    """A finished one-epoch classification job on real handwritten digits."""
    pid = api.project_id()
    upload = api.http.post(
        f"/projects/{pid}/datasets",
        data={"name": "digits (ui)"},
        files={"file": ("digits.zip", zip_bytes(digits_imagefolder(per_class=6)), "application/zip")},
    )
    assert upload.status_code == 201, upload.text
    version = upload.json()
    body = {
        "dataset_version_id": version["id"],
        "name": "digits one epoch",
        "task": "classify",
        "model": "yolo11n-cls.yaml",
        "hyperparameters": {"epochs": 1, "imgsz": 32, "batch": 16},
    }
    job = api.http.post(f"/projects/{pid}/jobs", json=body).raise_for_status().json()
    finished = api.wait_finished(pid, job["id"], timeout_s=300)
    assert finished["state"] == "succeeded", finished.get("error_message")
    return finished


def test_projects_home_is_a_card_per_project_with_role_and_counts(
    page: Page, stack: StackProcess, api: Api, output_dir: Path
) -> None:
    api.http.post("/projects", json={"name": "Empty project (cards)"}).raise_for_status()
    projects = api.http.get("/projects").raise_for_status().json()
    assert len(projects) >= 2
    page.goto(stack.web_url + "/")
    # The page first shows the cards its state had, then its load event's: wait for the count.
    expect(page.locator("#project-cards .project-card")).to_have_count(len(projects))
    for project in projects:
        card = page.locator(f".project-card[data-project-id='{project['id']}']")
        assert project["name"] in card.inner_text()
        assert card.locator(".project-role").inner_text() == f"Your role: {project['role']}"
        datasets = len(api.datasets(project["id"]))
        word = "dataset" if datasets == 1 else "datasets"
        assert card.locator(".project-datasets").inner_text() == f"{datasets} {word}"
        assert "running" in card.locator(".project-running").inner_text()
        assert card.locator(".project-faces .avatar").count() >= 1, "members' avatars"
        assert "Last activity" in card.locator(".project-activity").inner_text()
    # The card's name is a real button: keyboard focus and Enter pick the project.
    first = page.locator(".project-card-select").first
    first.focus()
    page.keyboard.press("Enter")
    page.wait_for_selector(".project-card[data-selected='true']")
    page.wait_for_selector("#datasets-table")
    page.screenshot(path=str(output_dir / "projects-home-cards.png"), full_page=True)


def test_classification_job_page_is_labelled_for_its_task_and_shows_its_one_epoch(
    page: Page, stack: StackProcess, classify_job: dict[str, Any], output_dir: Path
) -> None:
    page.goto(f"{stack.web_url}/jobs/{classify_job['id']}")
    page.wait_for_selector("#metrics-chart .main-svg")
    assert page.inner_text("#metrics-title") == "Loss and accuracy per epoch"
    assert page.get_attribute("#metrics-chart", "data-points") == "1"
    chart = page.locator("#metrics-chart")
    # Plotly draws SVG text: read it with text_content (inner_text is for HTML elements).
    assert chart.locator(".ytitle").text_content() == "Loss"
    assert chart.locator(".y2title").text_content() == "Accuracy"
    legend = " ".join(chart.locator(".legend .legendtext").all_text_contents())
    assert "Top-1 accuracy" in legend and "Train loss" in legend
    assert "box" not in legend.lower() and "map" not in legend.lower()
    # One epoch is one point per series: it must be drawn as a marker, not an invisible line.
    assert chart.locator(".scatterlayer .points path.point").count() >= 2
    box = chart.locator(".scatterlayer .points path.point").first.bounding_box()
    assert box is not None and box["width"] >= 6
    page.screenshot(path=str(output_dir / "job-classify-one-epoch.png"), full_page=True)

    page.click("#tab-per-class")
    page.wait_for_selector("#per-class-table")
    headers = page.locator("#per-class-table thead th").all_inner_texts()
    assert headers == ["Class", "Accuracy", "Support"]
    first_row = page.locator("#per-class-table tbody tr").first.locator("td").all_inner_texts()
    assert first_row[-1].isdigit(), f"support is a count of images: {first_row}"
    page.locator("#per-class-table").screenshot(path=str(output_dir / "job-classify-per-class.png"))


def test_dataset_previews_and_experiment_cards(
    page: Page, stack: StackProcess, api: Api, classify_job: dict[str, Any], output_dir: Path
) -> None:
    pid = api.project_id()
    page.goto(f"{stack.web_url}/projects/{pid}/datasets")
    previews = page.locator("#dataset-previews .dataset-preview")
    expect(previews).to_have_count(len(api.datasets(pid)))
    digits = page.locator(".dataset-preview", has_text="digits (ui)")
    assert digits.locator(".preview-strip img").count() == 4
    assert "10 classes" in digits.locator(".preview-facts").inner_text()
    page.screenshot(path=str(output_dir / "datasets-previews.png"), full_page=True)

    page.goto(f"{stack.web_url}/projects/{pid}/compare")
    pick = f"#pick-{classify_job['id']}"
    wait_hydrated(page, pick)  # a click before hydration is lost
    page.click(pick)  # a controlled checkbox: it shows the tick once the state has it
    expect(page.locator(pick)).to_be_checked()
    page.click("#compare-runs")
    card = page.locator(f"#run-cards .experiment-card[data-run-id='{classify_job['id']}']")
    expect(card).to_be_visible()
    text = card.inner_text()
    assert "yolo11n-cls" in text and "digits (ui) v1" in text and "Top-1 accuracy" in text
    assert card.locator(".avatar").count() == 1
    page.screenshot(path=str(output_dir / "compare-run-cards.png"), full_page=True)
