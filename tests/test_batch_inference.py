"""Batch inference and inference by model reference through the whole stack (`vtp up`): REST ->
queue -> dispatcher -> the trainer's batch runner -> callbacks -> results, on the sample dataset."""

from __future__ import annotations

import csv
import io
import json
import zipfile

import httpx
import pytest
from PIL import Image

from tests.utils.stack import Api, StackProcess

# The first test also trains the shared model (a module fixture) on the shared stack.
pytestmark = [pytest.mark.models, pytest.mark.timeout(1200)]


def _png(colour: tuple[int, int, int] = (200, 40, 40)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), colour).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def trained(api: Api) -> tuple[int, dict, dict]:
    """(project, the sample dataset version, a detector trained on it for one epoch)."""
    pid = api.project_id()
    sample = next(d for d in api.datasets(pid) if d["name"] == "shapes (sample)")
    job = api.start_job(pid, sample["id"], epochs=1)
    finished = api.wait_finished(pid, job["id"], timeout_s=900)
    assert finished["state"] == "succeeded", finished
    return pid, sample, finished


def test_batch_inference_over_the_sample_dataset(stack: StackProcess, api: Api, trained: tuple) -> None:
    pid, sample, model = trained
    response = api.http.post(
        f"/projects/{pid}/batch-inference",
        json={"model": f"jobs/{model['id']}", "dataset_version_id": sample["id"], "conf": 0.01},
    )
    assert response.status_code == 201, response.text
    batch = response.json()
    assert batch["state"] == "queued" and batch["name"].startswith(f"Batch inference: jobs/{model['id']}")
    done = api.wait_finished(pid, batch["id"], timeout_s=900)
    assert done["state"] == "succeeded", done

    results = api.http.get(f"/projects/{pid}/jobs/{batch['id']}/batch-results").raise_for_status().json()
    summary = results["summary"]
    assert results["images_total"] == results["images_done"] == sample["num_images"]
    assert summary["images"] == sample["num_images"] and summary["failed_images"] == 0
    assert set(summary["counts"]) == set(sample["classes"])
    assert sum(summary["score_histogram"]["counts"]) == summary["predictions"]
    assert results["gallery"] and httpx.get(results["gallery"][0]["image_url"]).content[:4] == b"\x89PNG"

    lines = httpx.get(results["downloads"]["predictions_jsonl"]).raise_for_status().text.splitlines()
    rows = [json.loads(line) for line in lines]
    assert len(rows) == sample["num_images"] and len({r["image"] for r in rows}) == len(rows)
    table = list(csv.DictReader(io.StringIO(httpx.get(results["downloads"]["predictions_csv"]).text)))
    assert [r["image"] for r in table] == [r["image"] for r in rows]
    assert sum(int(r["predictions"]) for r in table) == summary["predictions"]


def test_a_bad_zip_is_refused_with_a_clear_message(stack: StackProcess, api: Api, trained: tuple) -> None:
    pid, _sample, model = trained
    ref = {"model": f"jobs/{model['id']}"}
    cases = [
        ("notes.zip", b"this is not a zip", "not a zip file"),
        ("photos.tar", b"x", "upload a .zip of images"),
    ]
    text_only = io.BytesIO()
    with zipfile.ZipFile(text_only, "w") as zf:
        zf.writestr("readme.txt", "no pictures here")
    cases.append(("empty.zip", text_only.getvalue(), "holds no images"))
    # Other modules on the shared stack run batches over zips too: only this test's count.
    before = {j["id"] for j in api.http.get(f"/projects/{pid}/jobs").raise_for_status().json()}
    for filename, body, message in cases:
        response = api.http.post(
            f"/projects/{pid}/batch-inference/upload",
            data=ref,
            files={"images": (filename, body, "application/zip")},
        )
        assert response.status_code == 422, response.text
        assert message in response.json()["detail"], response.text
    jobs = api.http.get(f"/projects/{pid}/jobs").raise_for_status().json()
    assert [j for j in jobs if j["id"] not in before] == [], "a refused upload left a job behind"

    # A good zip is accepted and queued as a job, which cancels like any job (the zip path itself
    # runs in tests/trainer/test_exports_batch.py).
    good = io.BytesIO()
    with zipfile.ZipFile(good, "w") as zf:
        for i in range(3):
            zf.writestr(f"pics/{i}.png", _png((40 * i, 90, 200)))
    response = api.http.post(
        f"/projects/{pid}/batch-inference/upload",
        data=ref,
        files={"images": ("pics.zip", good.getvalue(), "application/zip")},
    )
    assert response.status_code == 201, response.text
    batch = response.json()
    assert batch["kind"] == "batch_inference"
    api.http.post(f"/projects/{pid}/jobs/{batch['id']}/cancel").raise_for_status()
    done = api.wait_finished(pid, batch["id"], timeout_s=900)
    assert done["state"] in {"cancelled", "succeeded"}, done  # it may have finished first


def test_playground_by_model_reference(stack: StackProcess, api: Api, trained: tuple) -> None:
    pid, _sample, model = trained
    files = {"image": ("red.png", _png(), "image/png")}
    response = api.http.post(f"/projects/{pid}/predict", data={"model": f"jobs/{model['id']}"}, files=files)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model_ref"] == f"jobs/{model['id']}" and body["task"] == "detect"
    assert body["model_uri"] == model["artifacts"]["best_checkpoint"]

    for ref, message in (
        ("jobs/999999", "does not exist"),
        ("models/no-such-model@champion", "does not exist"),
        ("best.pt", "not a model reference"),
    ):
        response = api.http.post(f"/projects/{pid}/predict", data={"model": ref}, files=files)
        assert response.status_code in {404, 422}, response.text
        assert message in response.json()["detail"], response.text
