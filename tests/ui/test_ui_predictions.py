"""Test-set evaluation and predictions side by side, end to end: two real tiny trainings on a
dataset version with a test split report `test/` metrics (job detail, MLflow), store per-image
predictions in S3, and the compare-predictions page and the confusion-matrix drill-down show
them in headless Chromium, filters included. The models page's batch-inference form runs the
first job over the same version.

One module fixture trains both jobs (1 epoch each, 64 px) on the session's shared stack; every
test reads them.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from mlflow.tracking import MlflowClient
from playwright.sync_api import Browser, Page

from services.domain import predictions
from services.infra.settings import Settings
from services.runtime import sample_data
from tests.utils.browser import VIEWPORT, sign_in, wait_hydrated
from tests.utils.stack import Api, StackProcess

pytestmark = [pytest.mark.e2e, pytest.mark.ui]
TEST_METRICS = {"test/precision", "test/recall", "test/map50", "test/map50_95"}
CAP = 4  # the second job's predictions cap: fewer than the split holds


def _read_json(stack: StackProcess, uri: str) -> dict[str, Any]:
    defaults = Settings()
    s3 = boto3.client(
        "s3",
        endpoint_url=stack.s3_url,
        aws_access_key_id=defaults.s3_access_key,
        aws_secret_access_key=defaults.s3_secret_key,
        region_name="us-east-1",
    )
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    doc: dict[str, Any] = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    return doc


@pytest.fixture(scope="module")
def trained(api: Api) -> dict[str, Any]:
    """Two finished jobs on one version with train/val/test images (the second with a cap)."""
    pid = api.project_id()
    data = sample_data.yolo_zip(train=16, val=6, test=6, seed=21)
    response = api.http.post(
        f"/projects/{pid}/datasets",
        data={"name": "shapes-with-test"},
        files={"file": ("shapes.zip", data, "application/zip")},
    )
    assert response.status_code == 201, response.text
    version = response.json()
    hyper = {"imgsz": 64, "batch": 16, "epochs": 1}
    ids = []
    for cap in (500, CAP):
        body = {"dataset_version_id": version["id"], "hyperparameters": hyper, "predictions_max_images": cap}
        ids.append(api.http.post(f"/projects/{pid}/jobs", json=body).raise_for_status().json()["id"])
    jobs = [api.wait_finished(pid, job_id, timeout_s=400) for job_id in ids]
    assert [j["state"] for j in jobs] == ["succeeded", "succeeded"], jobs
    return {"pid": pid, "version": version, "jobs": [api.job(pid, job_id) for job_id in ids]}


@pytest.fixture(scope="module")
def page(browser: Browser, stack: StackProcess) -> Iterator[Page]:
    page = sign_in(browser.new_page(viewport=VIEWPORT), stack)
    yield page
    page.close()


def test_test_metrics_reach_the_job_detail_and_mlflow(trained: dict[str, Any], stack: StackProcess) -> None:
    for detail in trained["jobs"]:
        assert set(detail["test_metrics"]) == TEST_METRICS, detail["test_metrics"]
        assert detail["metric_splits"] == {"val_metrics": "val", "test_metrics": "test"}
        assert {"map50", "map50_95"} <= set(detail["val_metrics"])
        run = MlflowClient(tracking_uri=stack.mlflow_url).get_run(detail["mlflow_run_id"])
        for name in TEST_METRICS:
            assert run.data.metrics[name] == pytest.approx(detail["test_metrics"][name]), name


def test_predictions_json_holds_truth_and_predictions_within_the_cap(
    trained: dict[str, Any], stack: StackProcess
) -> None:
    for detail, stored in zip(trained["jobs"], (6, CAP), strict=True):
        for split in ("val", "test"):
            doc = _read_json(stack, detail["artifacts"][f"predictions_{split}"])
            assert (doc["task"], doc["split"], doc["total_images"]) == ("detect", split, 6)
            assert doc["classes"] == list(sample_data.CLASSES)
            assert len(doc["images"]) == stored
            for image in doc["images"]:
                assert image["path"].startswith(f"images/{split}/")
                assert image["truth"], image  # every sample image holds at least one shape
                for obj in [*image["truth"], *image["predictions"]]:
                    x1, y1, x2, y2 = obj["box"]
                    assert -1 <= x1 < x2 <= image["width"] + 1 and -1 <= y1 < y2 <= image["height"] + 1
                assert all(0 <= p["score"] <= 1 for p in image["predictions"])


def _expected(trained: dict[str, Any], stack: StackProcess) -> list[predictions.JudgedSet]:
    return [predictions.judge(_read_json(stack, j["artifacts"]["predictions_val"])) for j in trained["jobs"]]


def _count(page: Page) -> int:
    text = page.inner_text("#prediction-count")
    found = re.search(r"of (\d+)", text)
    return int(found.group(1)) if found else 0


def _wait_count(page: Page, expected: int) -> None:
    page.wait_for_function(
        "n => { const t = document.querySelector('#prediction-count')?.innerText || '';"
        " const m = t.match(/of (\\d+)/); return (m ? +m[1] : 0) === n && (n > 0 || t.startsWith('No')); }",
        arg=expected,
        timeout=20_000,
    )


def test_compare_predictions_page_shows_both_models_and_filters(
    trained: dict[str, Any], stack: StackProcess, page: Page, output_dir: Path
) -> None:
    pid = trained["pid"]
    a, b = (j["id"] for j in trained["jobs"])
    sets = _expected(trained, stack)
    page.goto(f"{stack.web_url}/projects/{pid}/predictions?jobs={a},{b}")
    page.wait_for_selector("#prediction-grid .prediction-row", timeout=30_000)
    common = predictions.filter_paths(sets)
    assert len(common) == CAP  # only the images both models predicted
    _wait_count(page, CAP)
    rows = page.query_selector_all("#prediction-grid .prediction-row")
    assert [r.get_attribute("data-path") for r in rows] == common
    for row, path in zip(rows, common, strict=True):
        cells = row.query_selector_all(".prediction-cell")
        assert len(cells) == 3  # ground truth, then each model
        assert len(cells[0].query_selector_all("[data-kind='truth']")) == len(sets[0].images[path].truth)
        for cell, judged in zip(cells[1:], sets, strict=True):
            image = judged.images[path]
            drawn = [e.get_attribute("data-kind") for e in cell.query_selector_all(".prediction-box")]
            expected = [p["verdict"] for p in image.predictions] + [
                "missed" for t in image.truth if t["verdict"] == "missed"
            ]
            assert drawn == expected
            assert cell.get_attribute("data-verdict") == ("wrong" if image.wrong else "right")
    # The thumbnails load in the browser straight from object storage (presigned URLs).
    page.wait_for_function(
        "() => [...document.querySelectorAll('#prediction-grid img')]"
        ".every(i => i.complete && i.naturalWidth > 0)",
        timeout=20_000,
    )
    page.screenshot(path=str(output_dir / "compare-predictions.png"), full_page=True)

    wait_hydrated(page, "#prediction-class")
    circle = sample_data.CLASSES.index("circle")
    page.select_option("#prediction-class", "circle")
    _wait_count(page, len(predictions.filter_paths(sets, class_id=circle)))
    page.select_option("#prediction-class", "any")
    _wait_count(page, CAP)
    page.select_option("#prediction-wrong-in", str(b))
    _wait_count(page, len(predictions.filter_paths(sets, wrong_in=1)))
    page.select_option("#prediction-wrong-in", "any")
    _wait_count(page, CAP)
    page.click("#prediction-disagree")
    _wait_count(page, len(predictions.filter_paths(sets, disagree=True)))
    page.click("#prediction-disagree")
    _wait_count(page, CAP)

    # Filters changed faster than the page reads them: it settles on what was asked last
    # (a change made while a read ran used to be dropped, leaving the first filter's images).
    page.evaluate(
        """([wrongIn]) => {
            const choose = (id, value) => {
                const select = document.getElementById(id);
                select.value = value;
                select.dispatchEvent(new Event("change", { bubbles: true }));
            };
            choose("prediction-class", "circle");
            document.getElementById("prediction-disagree").click();
            choose("prediction-wrong-in", wrongIn);
        }""",
        [str(b)],
    )
    last = predictions.filter_paths(sets, class_id=circle, disagree=True, wrong_in=1)
    _wait_count(page, len(last))
    page.wait_for_selector("#prediction-loading", state="detached", timeout=20_000)
    assert _count(page) == len(last)
    shown = [
        r.get_attribute("data-path") for r in page.query_selector_all("#prediction-grid .prediction-row")
    ]
    assert shown == last[: len(shown)]


def test_jobs_on_different_versions_are_refused(
    trained: dict[str, Any], api: Api, stack: StackProcess, page: Page
) -> None:
    pid = trained["pid"]
    other = next(d for d in api.datasets(pid) if d["id"] != trained["version"]["id"])
    job = api.start_job(pid, other["id"], epochs=1)
    api.http.post(f"/projects/{pid}/jobs/{job['id']}/cancel")
    a = trained["jobs"][0]["id"]
    page.goto(f"{stack.web_url}/projects/{pid}/predictions?jobs={a},{job['id']}")
    page.wait_for_selector("#prediction-error", timeout=20_000)
    assert "different dataset versions" in page.inner_text("#prediction-error")
    assert page.query_selector("#prediction-grid .prediction-row") is None


def test_confusion_cell_lists_its_images(
    trained: dict[str, Any], stack: StackProcess, page: Page, output_dir: Path
) -> None:
    job = trained["jobs"][0]
    judged = _expected(trained, stack)[0]
    page.goto(f"{stack.web_url}/jobs/{job['id']}")
    page.wait_for_selector("#job-final-metrics [data-metric='test/map50_95']", timeout=30_000)
    page.click("#tab-confusion")
    page.wait_for_selector("#drill-true", timeout=30_000)
    wait_hydrated(page, "#drill-show")
    page.select_option("#drill-true", "square")
    page.select_option("#drill-predicted", "background")
    page.click("#drill-show")
    expected = predictions.cell_paths(judged, "background", "square")
    page.wait_for_function(
        "t => (document.querySelector('#drill-message')?.innerText || '').startsWith(t)",
        arg=f"{len(expected)} image",
        timeout=20_000,
    )
    assert "missed square" in page.inner_text("#drill-message")
    paths = [
        r.get_attribute("data-path") for r in page.query_selector_all("#confusion-drill .prediction-row")
    ]
    assert paths == expected[:12]
    page.screenshot(path=str(output_dir / "confusion-drill.png"), full_page=True)
    # A click on a heatmap cell (Plotly's own click event: x the true class, y the predicted).
    page.evaluate(
        "() => document.querySelector('#confusion-matrix .js-plotly-plot')"
        ".emit('plotly_click', {points: [{x: 'circle', y: 'background'}]})"
    )
    missed = predictions.cell_paths(judged, "background", "circle")
    page.wait_for_function(
        "t => (document.querySelector('#drill-message')?.innerText || '').startsWith(t)",
        arg=f"{len(missed)} image{'' if len(missed) == 1 else 's'}: missed circle",
        timeout=20_000,
    )
    assert page.input_value("#drill-true") == "circle"


def test_batch_inference_form_runs_a_model_over_a_version(
    trained: dict[str, Any], stack: StackProcess, api: Api, page: Page, output_dir: Path
) -> None:
    """The models page's batch form queues a run of a trained job over a dataset version; its job
    page shows the images done, then the finished run's summary (images done, failed, results files;
    no training metrics) and its JSON Lines, CSV and summary links."""
    pid, job, version = trained["pid"], trained["jobs"][0], trained["version"]
    page.goto(f"{stack.web_url}/projects/{pid}/models")
    page.wait_for_selector("#run-batch", timeout=30_000)
    for selector in ("#inference-model", "#batch-version", "#run-batch"):
        wait_hydrated(page, selector)
    page.select_option("#inference-model", str(job["id"]))
    page.select_option("#batch-version", str(version["id"]))
    page.click("#run-batch")
    link = page.wait_for_selector("#batch-job-link", timeout=30_000)
    assert link is not None and "queued" in link.inner_text()
    found = re.fullmatch(r"/jobs/(\d+)", link.get_attribute("href") or "")
    assert found, link.get_attribute("href")
    batch_id = int(found.group(1))
    link.click()
    page.wait_for_url(f"**/jobs/{batch_id}")

    # Progress counts images, not epochs; the page follows the run live until it finishes. Until
    # the page's load event is answered, a client-side navigation still shows the job opened
    # before it (a training job: "Epoch"), so wait for this job's label rather than read at once.
    page.wait_for_selector("#job-epoch", timeout=30_000)
    page.wait_for_function(
        "() => document.querySelector('#job-epoch')?.parentElement?.innerText.includes('Images')",
        timeout=30_000,
    )
    assert re.fullmatch(r"\d+/(\d+|\?)", page.inner_text("#job-epoch").strip())
    total = version["num_images"]
    page.wait_for_selector("#batch-downloads a", timeout=600_000)
    page.wait_for_function(
        "t => document.querySelector('#job-epoch')?.innerText.trim() === t", arg=f"{total}/{total}"
    )
    assert f"{total} of {total} images done, 0 failed" in page.inner_text("#batch-summary")
    # A run over images shows what it did, not training's "Final results" metrics.
    facts = page.inner_text("#batch-facts")
    assert f"{total} of {total}" in page.inner_text("#batch-facts [data-fact='Images done']"), facts
    assert "JSON Lines, CSV, Summary" in page.inner_text("#batch-facts [data-fact='Results files']"), facts
    assert page.locator("#job-final-metrics").count() == 0
    links = {
        a.inner_text().strip(): a.get_attribute("href") or ""
        for a in page.query_selector_all("#batch-downloads a")
    }
    assert set(links) == {"JSON Lines", "CSV", "Summary"}, links
    page.screenshot(path=str(output_dir / "batch-inference-results.png"), full_page=True)

    rows = [json.loads(line) for line in httpx.get(links["JSON Lines"]).raise_for_status().text.splitlines()]
    assert len(rows) == total and len({r["image"] for r in rows}) == total
    table = list(csv.DictReader(io.StringIO(httpx.get(links["CSV"]).raise_for_status().text)))
    assert [r["image"] for r in table] == [r["image"] for r in rows]
    detail = api.job(pid, batch_id)  # the run the form queued: the chosen model over the chosen version
    assert (detail["kind"], detail["state"], detail["dataset_version_id"]) == (
        "batch_inference",
        "succeeded",
        version["id"],
    )
    assert detail["name"].startswith(f"Batch inference: jobs/{job['id']}"), detail["name"]
