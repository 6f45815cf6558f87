"""Datasets pages in real headless Chromium against the whole stack: upload with a progress bar,
the problem table of a bad zip, the gallery and full-size view, the split dialog, and a viewer
who sees no mutating controls (and whom the server refuses anyway)."""

from __future__ import annotations

import io
import uuid
import zipfile
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page

from services.runtime import sample_data
from tests.utils.browser import VIEWPORT, sign_in
from tests.utils.stack import Api, StackProcess

pytestmark = pytest.mark.ui


def open_as(browser: Browser, stack: StackProcess, path: str, username: str = "", password: str = "") -> Page:
    page = browser.new_page(viewport=VIEWPORT)
    page.set_default_timeout(30_000)
    return sign_in(page, stack, path, username, password)


def bad_zip() -> bytes:
    source = zipfile.ZipFile(io.BytesIO(sample_data.yolo_zip(train=3, val=1)))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for name in source.namelist():
            data = source.read(name)
            if name == "labels/train/0000.txt":
                data += b"7 0.5 0.5 0.2 0.2\n"
            archive.writestr(name, data)
    return out.getvalue()


def make_viewer(api: Api, stack: StackProcess, project_id: int) -> tuple[str, str]:
    username, password = f"viewer-{uuid.uuid4().hex[:6]}", "viewer-pass-123"
    api.http.put("/admin/settings", json={"signup_enabled": True}).raise_for_status()
    api.http.post("/auth/signup", json={"username": username, "password": password}).raise_for_status()
    api.http.post(
        f"/projects/{project_id}/members", json={"username": username, "role": "viewer"}
    ).raise_for_status()
    return username, password


def test_upload_shows_progress_and_lists_the_dataset(
    browser: Browser, stack: StackProcess, api: Api, output_dir: Path, tmp_path: Path
) -> None:
    pid = api.project_id()
    archive = tmp_path / "birds.zip"
    archive.write_bytes(sample_data.yolo_zip(train=40, val=10, size=160))
    page = open_as(browser, stack, f"/projects/{pid}/datasets")
    page.wait_for_selector("#dataset-list")
    page.locator("#dataset-upload input[type=file]").set_input_files(str(archive))
    page.wait_for_selector("#upload-selected")
    page.fill("#upload-name", "birds-ui")
    page.click("#upload-start")
    page.wait_for_selector("#upload-progress")
    page.wait_for_selector("#upload-done", timeout=60_000)
    assert page.inner_text("#upload-percent").strip() == "100%"
    assert page.get_attribute("#upload-progress", "data-percent") == "100"
    assert "KB" in page.inner_text("#upload-bytes")
    page.wait_for_selector("#dataset-list >> text=birds-ui")
    page.screenshot(path=str(output_dir / "datasets-list.png"), full_page=True)
    assert any(d["name"] == "birds-ui" for d in api.datasets(pid))


def test_bad_zip_shows_the_problem_table(
    browser: Browser, stack: StackProcess, api: Api, output_dir: Path, tmp_path: Path
) -> None:
    pid = api.project_id()
    archive = tmp_path / "broken.zip"
    archive.write_bytes(bad_zip())
    page = open_as(browser, stack, f"/projects/{pid}/datasets")
    page.locator("#dataset-upload input[type=file]").set_input_files(str(archive))
    page.click("#upload-start")
    page.wait_for_selector("#upload-rejected", timeout=60_000)
    table = page.inner_text("#report-table")
    assert "labels/train/0000.txt" in table and "class id 7 is out of range" in table
    assert "Nothing was stored" in page.inner_text("#upload-rejected")
    page.screenshot(path=str(output_dir / "datasets-upload-rejected.png"), full_page=True)


def test_gallery_viewer_and_split_dialog(
    browser: Browser, stack: StackProcess, api: Api, output_dir: Path
) -> None:
    pid = api.project_id()
    sample = next(d for d in api.datasets(pid) if d["name"] == "shapes (sample)")
    page = open_as(browser, stack, f"/projects/{pid}/datasets/{sample['dataset_id']}")
    page.wait_for_selector("#gallery .gallery-tile img")
    assert page.locator("#gallery .gallery-tile").count() == 12
    assert page.get_attribute("#gallery .gallery-tile img", "src").startswith("data:image/jpeg;base64,")
    page.wait_for_selector("#chart-classes .main-svg")
    page.screenshot(path=str(output_dir / "dataset-detail.png"), full_page=True)
    page.click("#gallery-next")
    page.wait_for_selector("#gallery-range >> text=Images 13–")
    page.select_option("#gallery-split", "val")
    page.wait_for_function("document.querySelector('#gallery-range').innerText.startsWith('Images 1–')")
    page.locator("#gallery .gallery-tile").first.click()
    page.wait_for_selector("#viewer-image")
    page.screenshot(path=str(output_dir / "dataset-image-viewer.png"))
    page.click("#viewer-close")

    before = max(
        int(v["version"])
        for v in api.http.get(f"/projects/{pid}/datasets/{sample['dataset_id']}/versions").json()
    )
    page.click("#split-open")
    page.wait_for_selector("#split-dialog")
    page.fill("#split-train", "0.7")
    page.fill("#split-val", "0.2")
    page.select_option("#split-method", "random")
    page.fill("#split-seed", "7")
    page.screenshot(path=str(output_dir / "dataset-split-dialog.png"))
    page.click("#split-submit")
    page.wait_for_selector(f"#split-notice >> text=Created version {before + 1}")
    page.wait_for_selector(f"#versions-table tr[data-version='{before + 1}']")
    versions = api.http.get(f"/projects/{pid}/datasets/{sample['dataset_id']}/versions").json()
    assert versions[0]["version"] == before + 1 and versions[0]["split_method"] == "random"


def test_viewer_sees_no_mutating_controls_and_is_refused(
    browser: Browser, stack: StackProcess, api: Api, output_dir: Path
) -> None:
    pid = api.project_id()
    username, password = make_viewer(api, stack, pid)
    sample = next(d for d in api.datasets(pid) if d["name"] == "shapes (sample)")
    page = open_as(browser, stack, f"/projects/{pid}/datasets", username, password)
    page.wait_for_selector("#upload-locked")
    assert page.locator("#upload-start").count() == 0
    assert "member" in page.get_attribute("#upload-locked", "data-needs-role")
    page.screenshot(path=str(output_dir / "datasets-as-viewer.png"), full_page=True)
    page.goto(f"{stack.web_url}/projects/{pid}/datasets/{sample['dataset_id']}")
    page.wait_for_selector("#split-locked")
    assert page.locator("#split-open").count() == 0
    page.wait_for_selector("#gallery .gallery-tile")

    viewer = Api(stack.api_url, username, password)
    upload = viewer.http.post(
        f"/projects/{pid}/datasets",
        files={"file": ("x.zip", sample_data.yolo_zip(train=2, val=1), "application/zip")},
    )
    split = viewer.http.post(
        f"/projects/{pid}/datasets/{sample['dataset_id']}/split", json={"method": "random"}
    )
    assert upload.status_code == split.status_code == httpx.codes.FORBIDDEN
