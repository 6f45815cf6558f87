"""The model registry page in real headless Chromium against the stack: an uploaded model's card,
moving an alias as the owner, "Fine-tune from this" filling the train form, a viewer's view."""

from __future__ import annotations

import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import pytest
from playwright.sync_api import Browser

from tests.ui.test_ui_datasets import make_viewer, open_as
from tests.utils.stack import Api, StackProcess

pytestmark = [pytest.mark.ui, pytest.mark.models]


def _upload(api: Api, project_id: int, name: str) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "coco-like.pt"
        code = f"from ultralytics import YOLO; YOLO('yolo11n.yaml').save({str(path)!r})"
        subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, cwd=tmp)
        response = api.http.post(
            f"/projects/{project_id}/models/upload",
            data={"name": name, "description": "shapes start point"},
            files={"file": ("coco-like.pt", path.read_bytes(), "application/octet-stream")},
        )
    assert response.status_code == 201, response.text
    return response.json()


def test_registry_page_card_alias_and_fine_tune(
    browser: Browser, stack: StackProcess, api: Api, output_dir: Path
) -> None:
    pid = api.project_id()
    name = f"ui-{uuid.uuid4().hex[:6]}"
    _upload(api, pid, name)

    page = open_as(browser, stack, f"/projects/{pid}/registry")
    page.wait_for_selector(f"tr[data-model='{name}']")
    page.click(f"#model-{name}")
    page.wait_for_selector("#model-card")
    page.wait_for_function(
        "([n]) => document.querySelector('#model-card')?.innerText.includes(n)", arg=[f"{name}"]
    )
    assert page.inner_text("#card-task").strip() == "detect"
    assert "yolo11n.yaml" in page.inner_text("#card-framework")
    assert "uploaded" in page.inner_text("#card-training_data")
    assert page.inner_text("#card-description").strip() == "shapes start point"
    page.wait_for_selector("#download-weights")

    page.fill("#alias-name", "champion")
    page.click("#set-alias")
    page.wait_for_selector("#registry-message")
    assert "champion now points at" in page.inner_text("#registry-message")
    page.wait_for_selector("tr[data-version='1'] >> text=champion")
    page.screenshot(path=str(output_dir / "registry.png"), full_page=True)
    assert api.http.get(f"/projects/{pid}/models/{name}").json()["aliases"] == {"champion": 1}
    page.click("#remove-alias-champion")
    page.wait_for_selector("#registry-message >> text=Removed alias champion")
    assert api.http.get(f"/projects/{pid}/models/{name}").json()["aliases"] == {}

    page.click("#fine-tune")
    page.wait_for_url(f"**/projects/{pid}/train?start_from=models/{name}/1")
    page.wait_for_function(
        "([v]) => document.querySelector('#start-from')?.value === v", arg=[f"models/{name}/1"]
    )
    page.screenshot(path=str(output_dir / "train-start-from.png"), full_page=True)
    page.close()

    username, password = make_viewer(api, stack, pid)
    viewer = open_as(browser, stack, f"/projects/{pid}/registry", username, password)
    viewer.wait_for_selector(f"tr[data-model='{name}']")
    viewer.click(f"#model-{name}")
    viewer.wait_for_selector("#model-card")
    viewer.wait_for_selector("#alias-locked")  # aliases are for project admins
    viewer.wait_for_selector("#register-locked")  # registering is for members
    assert viewer.locator("#set-alias").count() == 0 and viewer.locator("#register").count() == 0
    viewer.close()
