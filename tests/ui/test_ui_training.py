"""Training journeys in real headless Chromium against the whole running stack: the generated form,
the live chart, cancel + resume, the jobs list, compare, export and inference on a real photo."""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page

from tests.utils.browser import VIEWPORT, sign_in
from tests.utils.stack import Api, StackProcess

pytestmark = pytest.mark.ui

FINISHED = {"succeeded", "failed", "cancelled"}


@pytest.fixture(scope="module")
def page(browser: Browser, stack: StackProcess) -> Iterator[Page]:
    page = sign_in(browser.new_page(viewport=VIEWPORT), stack)
    yield page
    page.close()


def _state(page: Page) -> str:
    return page.get_attribute("#job-state .status-indicator", "data-state") or ""


def _points(page: Page) -> int:
    return int(page.get_attribute("#metrics-chart", "data-points") or 0)


def test_generated_form_trains_and_the_chart_moves(
    page: Page, stack: StackProcess, api: Api, output_dir: Path
) -> None:
    pid = api.project_id()
    page.goto(f"{stack.web_url}/projects/{pid}/train")
    page.wait_for_selector("#hyperparameters .hp-field")
    # Every hyperparameter of the trainer's catalogue is a labelled field with its default.
    names = page.eval_on_selector_all("#hyperparameters .hp-field", "els => els.map(e => e.dataset.name)")
    assert {"epochs", "imgsz", "batch", "lr0", "optimizer", "cos_lr"} <= set(names)
    assert page.input_value("#hp-epochs") == "5"
    assert page.get_attribute("#hp-epochs", "max") == "1000"
    # Field-level validation before submit.
    page.fill("#hp-lr0", "7")
    page.press("#hp-lr0", "Tab")
    page.wait_for_selector("#hp-lr0-error")
    assert "lr0 must be between" in page.inner_text("#hp-lr0-error")
    page.screenshot(path=str(output_dir / "train-form.png"), full_page=True)
    page.fill("#hp-lr0", "0.01")
    page.press("#hp-lr0", "Tab")
    page.wait_for_selector("#hp-lr0-error", state="detached")
    page.fill("#hp-epochs", "4")
    page.fill("#hp-imgsz", "64")
    page.fill("#hp-batch", "8")
    page.fill("#job-name", "form run")
    page.select_option("#device", "cpu")
    page.click("#start-training")
    page.wait_for_url("**/jobs/*", timeout=30_000)
    page.wait_for_selector("#metrics-chart")
    seen = [_points(page)]
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and _state(page) not in FINISHED:
        if _points(page) != seen[-1]:
            seen.append(_points(page))
        time.sleep(0.25)
    assert _state(page) == "succeeded", page.inner_text("main")
    page.wait_for_function("document.querySelector('#metrics-chart').dataset.points === '4'", timeout=30_000)
    # The final last.pt is stored: the page says which epoch a resumed run would continue after.
    page.wait_for_function(
        "document.querySelector('#job-checkpoint')?.innerText === 'epoch 4 stored'", timeout=30_000
    )
    assert len([b for a, b in zip(seen, seen[1:], strict=False) if b > a]) >= 2, seen
    job = api.job(pid, int(page.url.rstrip("/").rsplit("/", 1)[-1]))
    assert job["hyperparameters"]["epochs"] == 4 and job["device"] == "cpu"
    # Validation tab: per-class table, confusion matrix, PR curve; artifacts with download links.
    page.wait_for_selector("#per-class-table", timeout=30_000)
    page.click("#tab-confusion")
    page.wait_for_selector("#confusion-matrix .main-svg")
    page.screenshot(path=str(output_dir / "job-validation-confusion.png"), full_page=True)
    page.click("#tab-pr")
    page.wait_for_selector("#pr-curve .main-svg")
    page.click("#tab-gallery")
    page.wait_for_selector("#predictions-gallery img", timeout=30_000)
    page.wait_for_selector("#job-artifacts a[download]")
    assert page.locator("#mlflow-link").count() == 1
    page.screenshot(path=str(output_dir / "job-finished-gallery.png"), full_page=True)


def test_cancel_then_resume_and_jobs_list(
    page: Page, stack: StackProcess, api: Api, output_dir: Path
) -> None:
    pid = api.project_id()
    version = api.datasets(pid)[-1]["id"]
    job = api.start_job(pid, version, epochs=200, imgsz=64, batch=8)
    page.goto(f"{stack.web_url}/jobs/{job['id']}")
    page.wait_for_function(
        "document.querySelector('#job-state .status-indicator')?.dataset.state === 'running' "
        "&& Number(document.querySelector('#metrics-chart')?.dataset.points) >= 2",
        timeout=90_000,
    )
    try:
        page.click("#cancel-job", timeout=10_000)
    except Exception:
        page.screenshot(path=str(output_dir / "debug-cancel.png"), full_page=True)
        raise
    page.wait_for_function(
        "document.querySelector('#job-state .status-indicator')?.dataset.state === 'cancelled'",
        timeout=60_000,
    )
    page.wait_for_selector("#resume-job")
    page.screenshot(path=str(output_dir / "job-cancelled.png"), full_page=True)
    page.click("#resume-job")
    page.wait_for_url(lambda url: url.rstrip("/").endswith(f"/jobs/{job['id']}") is False, timeout=30_000)
    new_id = int(page.url.rstrip("/").rsplit("/", 1)[-1])
    resumed = api.job(pid, new_id)
    assert resumed["attempt"] == 2 and "resumed" in resumed["name"]
    page.wait_for_selector("#metrics-chart")
    assert _points(page) >= 1  # the epochs already trained came along
    api.http.post(f"/projects/{pid}/jobs/{new_id}/cancel").raise_for_status()
    page.goto(f"{stack.web_url}/projects/{pid}/jobs")
    page.wait_for_selector("#jobs-list tr[data-job-id]")
    page.select_option("#filter-state", "cancelled")
    # A sweep trial the pruner stopped is a cancelled job shown as "pruned" (the suite's shared
    # stack holds the sweeps tests' trials too).
    page.wait_for_function(
        "[...document.querySelectorAll('#jobs-list tbody tr')].every(r => "
        "['cancelled', 'pruned'].includes(r.querySelector('.status-indicator').dataset.state))"
    )
    page.wait_for_selector(f"#jobs-list tr[data-job-id='{new_id}']")  # the resumed one, cancelled
    page.screenshot(path=str(output_dir / "jobs-list.png"), full_page=True)


def test_compare_two_runs(page: Page, stack: StackProcess, api: Api, output_dir: Path) -> None:
    pid = api.project_id()
    page.goto(f"{stack.web_url}/projects/{pid}/compare")
    page.wait_for_selector("#runs-table tr[data-run-id]")
    page.select_option("#run-state", "succeeded")
    page.wait_for_function(
        "[...document.querySelectorAll('#runs-table tbody tr')].every(r => "
        "r.querySelector('.status-indicator').dataset.state === 'succeeded')"
    )
    page.select_option("#run-state", "")
    # This module's runs share their size settings; the project holds other tests' runs too.
    query = "params.imgsz=64 params.batch=8"
    total = api.http.get(f"/projects/{pid}/runs", params={"q": query}).raise_for_status().json()["total"]
    page.fill("#run-search", query)
    page.wait_for_function(
        f"document.querySelector('#runs-page-label').innerText.includes(' · {total} runs · ')"
    )
    page.wait_for_function("document.querySelectorAll('#runs-table tbody tr').length >= 2")
    page.click("#select-page")
    page.wait_for_function("document.querySelector('#runs-page-label').innerText.includes(' selected')")
    page.click("#compare-runs")
    page.wait_for_selector("#compare-chart .main-svg", timeout=30_000)
    page.wait_for_function("Number(document.querySelector('#compare-chart').dataset.runs) >= 2")
    runs = int(page.get_attribute("#compare-chart", "data-runs") or 0)
    assert runs >= 2
    assert page.locator("#compare-chart .scatterlayer .trace").count() >= 2
    assert page.locator("#hp-table tr[data-differs='true']").count() >= 1
    # "Only show settings that differ" is on by default: equal settings are hidden until it is off.
    assert page.locator("#hp-table tr[data-differs='false']").count() == 0
    page.click("#only-differences")
    page.wait_for_function("document.querySelectorAll(\"#hp-table tr[data-differs='false']\").length > 0")
    page.click("#sort-map50_95")
    page.wait_for_selector("#parallel-chart .main-svg")
    page.screenshot(path=str(output_dir / "compare.png"), full_page=True)

    # Saved and shared: the URL opens the same runs and view in a fresh page.
    page.fill("#view-name", "two runs")
    page.click("#save-view")
    page.wait_for_function("(document.querySelector('#view-message')?.innerText || '').includes('?view=')")
    shared = page.inner_text("#view-message").rsplit("share ", 1)[-1].strip()
    other = sign_in(page.context.browser.new_page(viewport=VIEWPORT), stack, shared)
    other.wait_for_function(f"Number(document.querySelector('#compare-chart')?.dataset.runs) === {runs}")
    assert other.locator("#hp-table tr[data-differs='false']").count() > 0, (
        "the saved view (all settings) came along"
    )
    other.close()


def test_export_and_inference_on_a_real_photo(
    page: Page, stack: StackProcess, api: Api, output_dir: Path
) -> None:
    from PIL import Image
    from skimage import data

    pid = api.project_id()
    page.goto(f"{stack.web_url}/projects/{pid}/models")
    page.wait_for_selector("#models-table tr[data-job-id]")
    job_id = page.get_attribute("#models-table tr[data-job-id]", "data-job-id")
    page.click(f"#export-onnx-{job_id}")
    page.wait_for_selector("#export-message", timeout=120_000)
    assert "onnx" in page.inner_text("#export-message"), page.inner_text("#export-message")
    assert "export_onnx" in api.job(pid, int(job_id or 0))["artifacts"]
    photo = output_dir / "astronaut.png"
    buffer = io.BytesIO()
    Image.fromarray(data.astronaut()).save(buffer, format="PNG")
    photo.write_bytes(buffer.getvalue())
    page.select_option("#inference-model", job_id)
    page.set_input_files("#inference-upload input[type=file]", str(photo))
    page.wait_for_selector("#inference-image img")
    page.wait_for_selector("#predictions-table", timeout=60_000)
    page.wait_for_selector("#predicting", state="detached", timeout=60_000)
    assert page.locator("#predict-error").count() == 0
    page.screenshot(path=str(output_dir / "models-inference.png"), full_page=True)


def test_analytics(page: Page, stack: StackProcess, output_dir: Path) -> None:
    page.goto(f"{stack.web_url}/analytics")
    page.wait_for_selector("#usage-table")
    page.wait_for_selector("#chart-per-day .main-svg")
    page.select_option("#group-by", "user")
    page.wait_for_function("document.querySelector('#usage-table').innerText.includes('%')")
    page.screenshot(path=str(output_dir / "analytics.png"), full_page=True)
