"""The model registry and batch inference from the `vtp` command line (a subprocess, as a user runs
it) against the whole test stack: register a trained job's model, move an alias, resolve it, run
the alias over a dataset version with `vtp predict batch --wait --dest`, and parse the JSON Lines
and CSV it downloaded; upload weights (`vtp models upload`), run a version over a zip of images,
download a version's export and the job's, remove an alias; then the refusals a user meets, each
with a message saying what to fix.

It reuses the tiny job test_cli.py trained (1 epoch, 32 px, 12 images) when that module ran first
on the session's stack, else trains one like it through the REST API.
"""

from __future__ import annotations

import csv
import io
import json
import re
import uuid
import zipfile
from pathlib import Path
from typing import Any

import onnx
import pytest
from PIL import Image
from vtp_client import Client, InvalidInput

from services.runtime.sample_data import yolo_zip
from tests.client.test_cli import Run, login, ok, vtp  # noqa: F401 - `vtp` is the shared fixture
from tests.utils.stack import Api, StackProcess

pytestmark = [pytest.mark.client, pytest.mark.timeout(900)]


def _from_test_cli(api: Api, pid: int) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """test_cli.py's tiny job and its dataset, when that module ran earlier on this stack."""
    tiny = [d for d in api.datasets(pid) if d["name"] == "cli-tiny" and d["version"] == 1]
    if not tiny:
        return None
    succeeded = api.http.get(f"/projects/{pid}/jobs", params={"state": "succeeded"}).raise_for_status()
    for job in succeeded.json():
        if job["dataset_version_id"] == tiny[0]["id"] and job["artifacts"].get("best_checkpoint"):
            return tiny[0], job
    return None


@pytest.fixture(scope="module")
def trained(api: Api) -> tuple[int, dict[str, Any], dict[str, Any]]:
    """(project id, a 12-image dataset version, a succeeded 1-epoch job trained on it): the CLI
    test's when it ran first on the session's stack, else one trained here."""
    pid = api.project_id()
    reused = _from_test_cli(api, pid)
    if reused is not None:
        return pid, *reused
    response = api.http.post(
        f"/projects/{pid}/datasets",
        data={"name": f"cli-reg-{uuid.uuid4().hex[:6]}"},
        files={"file": ("tiny.zip", yolo_zip(train=8, val=4, size=32, seed=11), "application/zip")},
    )
    assert response.status_code == 201, response.text
    version = response.json()
    job = api.start_job(pid, version["id"], epochs=1, imgsz=32, batch=4)
    finished = api.wait_finished(pid, job["id"], timeout_s=600)
    assert finished["state"] == "succeeded", finished
    return pid, version, finished


def test_register_alias_resolve_and_batch_predict(
    vtp: Run,  # noqa: F811
    stack: StackProcess,
    trained: tuple[int, dict[str, Any], dict[str, Any]],
    tmp_path: Path,
) -> None:
    pid, version, job = trained
    p, name = str(pid), f"cli-{uuid.uuid4().hex[:6]}"
    login(vtp, stack)

    registered = json.loads(
        ok(vtp("models", "register", str(job["id"]), "-n", name, "-P", p, "-o", "json")).stdout
    )
    assert (registered["model"], registered["version"], registered["job_id"]) == (name, 1, job["id"])
    assert registered["dataset_version_id"] == version["id"] and registered["classes"] == version["classes"]
    assert "map50" in registered["val_metrics"], registered

    assert (
        "now points at version 1" in ok(vtp("models", "alias", "set", name, "champion", "1", "-P", p)).stdout
    )
    resolved = json.loads(ok(vtp("models", "resolve", f"{name}@champion", "-P", p, "-o", "json")).stdout)
    assert (resolved["version"], resolved["aliases"], resolved["job_id"]) == (1, ["champion"], job["id"])
    listed = {r["name"]: r for r in json.loads(ok(vtp("models", "ls", "-P", p, "-o", "json")).stdout)}
    assert listed[name]["aliases"] == {"champion": 1} and listed[name]["latest_version"] == 1
    shown = ok(vtp("models", "show", name, "-P", p)).stdout
    assert "champion" in shown and f"job {job['id']}" in shown, shown

    weights = tmp_path / "weights"
    weights.mkdir()
    saved = ok(vtp("models", "download", f"{name}@champion", "-P", p, "--dest", str(weights))).stdout
    files = list(weights.iterdir())
    assert len(files) == 1 and zipfile.is_zipfile(files[0]), saved  # a torch checkpoint is a zip

    results = tmp_path / "results"
    batch = vtp(
        "predict", "batch", "--model", f"{name}@champion", "--dataset", f"{version['name']}:1",
        "-P", p, "--conf", "0.01", "--wait", "--poll", "1", "--dest", str(results), "-o", "json",
        timeout=600,
    )  # fmt: skip
    assert batch.returncode == 0, f"stdout:\n{batch.stdout}\nstderr:\n{batch.stderr}"
    assert "queued: " in batch.stderr and "12/12 images" in batch.stderr, batch.stderr
    doc = json.loads(batch.stdout)
    assert doc["state"] == "succeeded" and doc["images_done"] == doc["images_total"] == 12, doc
    rows = [json.loads(line) for line in (results / "predictions.jsonl").read_text().splitlines()]
    assert len(rows) == 12 and len({r["image"] for r in rows}) == 12
    with (results / "predictions.csv").open(newline="") as handle:
        table = list(csv.DictReader(handle))
    assert [r["image"] for r in table] == [r["image"] for r in rows]
    assert sum(int(r["predictions"]) for r in table) == doc["summary"]["predictions"]

    # The library downloads the run's summary; `vtp predict results` shows its progress.
    with Client.login(stack.web_url, stack.username, stack.password) as session:
        (found,) = session.batch.download(pid, doc["job_id"], tmp_path / "lib", formats=("summary",))
    assert json.loads(found.read_text())["predictions"] == doc["summary"]["predictions"]
    summary = ok(vtp("predict", "results", str(doc["job_id"]), "-P", p)).stdout
    assert "succeeded: 12/12 images" in summary, summary


def test_bad_input_gets_a_message_saying_what_to_fix(
    vtp: Run,  # noqa: F811
    stack: StackProcess,
    trained: tuple[int, dict[str, Any], dict[str, Any]],
    tmp_path: Path,
) -> None:
    pid, version, job = trained
    p, name = str(pid), f"cli-bad-{uuid.uuid4().hex[:6]}"
    login(vtp, stack)
    neither = vtp("predict", "batch", "--model", str(job["id"]), "-P", p)
    assert neither.returncode == 2 and "exactly one of --dataset" in neither.stderr, neither.stderr
    not_zip = tmp_path / "photos.zip"
    not_zip.write_text("not a zip")
    both = vtp("predict", "batch", "-m", "1", "--dataset", "x", "--images", str(not_zip), "-P", p)
    assert both.returncode == 2 and "exactly one of" in both.stderr, both.stderr
    refused = vtp("predict", "batch", "-m", str(job["id"]), "--images", str(not_zip), "-P", p)
    assert refused.returncode == 1 and "not a zip file" in refused.stderr, refused.stderr
    unknown = vtp("predict", "batch", "-m", "no-such-model@champion", "--dataset", version["name"], "-P", p)
    assert unknown.returncode == 1 and "does not exist" in unknown.stderr, unknown.stderr

    ok(vtp("models", "register", str(job["id"]), "--name", name, "-P", p))
    missing = vtp("models", "alias", "set", name, "champion", "9", "-P", p)
    assert missing.returncode == 1 and "has no version 9" in missing.stderr, missing.stderr
    no_alias = vtp("models", "resolve", f"{name}@nope", "-P", p)
    assert no_alias.returncode == 1 and "has no alias 'nope'" in no_alias.stderr, no_alias.stderr
    no_version = vtp("models", "download", name, "-P", p)
    assert no_version.returncode == 2 and f"{name}@champion" in no_version.stderr, no_version.stderr
    no_export = vtp("models", "download", f"{name}/1", "-P", p, "--format", "ncnn", "--dest", str(tmp_path))
    assert no_export.returncode == 1 and "has no 'ncnn'" in no_export.stderr, no_export.stderr

    with Client(stack.web_url) as session, pytest.raises(InvalidInput, match="not a zip file"):
        session.batch.start_zip(pid, job["id"], not_zip)  # refused before anything is sent


def _png(size: tuple[int, int], colour: tuple[int, int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format="PNG")
    return buffer.getvalue()


def _listed_without_a_dataset_version(api: Api, pid: int, batch_id: int, trained_id: int) -> None:
    """A batch run without a dataset version is in every list and page a job is, saying so."""
    for params in ({}, {"light": "true"}):
        listed = api.http.get(f"/projects/{pid}/jobs", params=params).raise_for_status().json()
        (row,) = [j for j in listed if j["id"] == batch_id]
        assert (row["kind"], row["dataset_version_id"], row["state"]) == (
            "batch_inference",
            None,
            "succeeded",
        )
    detail = api.http.get(f"/projects/{pid}/jobs/{batch_id}").raise_for_status().json()
    assert detail["dataset_version_id"] is None and detail["kind"] == "batch_inference", detail
    assert detail["name"].endswith("on uploaded images"), detail["name"]
    compared = api.http.get(f"/projects/{pid}/compare", params={"ids": f"{trained_id},{batch_id}"})
    body = compared.raise_for_status().json()
    assert sorted(r["id"] for r in body["runs"]) == sorted([trained_id, batch_id]), body["runs"]
    (data_row,) = [r for r in body["hyperparameters"] if r["name"] == "dataset_version_id"]
    assert "uploaded images" in data_row["values"], data_row
    runs = api.http.get(f"/projects/{pid}/runs", params={"limit": 500}).raise_for_status().json()
    assert trained_id in {r["id"] for r in runs["items"]}  # training runs only: no batch run
    judged = api.http.get(f"/projects/{pid}/predictions/compare", params={"jobs": f"{trained_id},{batch_id}"})
    assert judged.status_code == 422 and "ran over uploaded images" in judged.json()["detail"], judged.text


def test_upload_weights_export_download_zip_batch_and_alias_rm(
    vtp: Run,  # noqa: F811
    stack: StackProcess,
    api: Api,
    trained: tuple[int, dict[str, Any], dict[str, Any]],
    tmp_path: Path,
) -> None:
    """The paths a user takes after training: bring weights in with `vtp models upload`, run a
    registered version over a zip of photos, export it and download that export (from the version,
    from a version registered later, from the job), and take an alias away again."""
    pid, version, job = trained
    p, name = str(pid), f"cli-up-{uuid.uuid4().hex[:6]}"
    login(vtp, stack)

    # Weights from elsewhere: the job's checkpoint, downloaded and uploaded as a new model.
    weights = tmp_path / "weights"
    ok(vtp("models", "download", str(job["id"]), "-P", p, "--dest", f"{weights}/"))
    uploaded = json.loads(
        ok(vtp("models", "upload", str(weights / "best.pt"), "-n", name, "-P", p, "-o", "json")).stdout
    )
    assert (uploaded["model"], uploaded["version"], uploaded["source"]) == (name, 1, "upload")
    assert (uploaded["framework"], uploaded["task"]) == ("ultralytics", "detect"), uploaded
    assert uploaded["classes"] == version["classes"], uploaded
    shown = ok(vtp("models", "upload", str(weights / "best.pt"), "-n", name, "-P", p)).stdout
    assert f"models/{name}/2" in shown and f"{len(version['classes'])} classes" in shown, shown
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"PK\x03\x04 not really a checkpoint")
    refused = vtp("models", "upload", str(junk), "-n", name, "-P", p)
    assert refused.returncode == 1 and "not a PyTorch checkpoint" in refused.stderr, refused.stderr

    # Register the job, run it over a zip, export it, and download that export from the version
    # and from the job.
    registered = f"{name}-job"
    ok(vtp("models", "register", str(job["id"]), "-n", registered, "-P", p))
    # The uploaded version over a zip of images, one of them unreadable (a row with its error).
    # Neither the weights nor the zip are a dataset version: the run has none, and is a job like any.
    photos = tmp_path / "photos.zip"
    with zipfile.ZipFile(photos, "w") as zf:
        for i, colour in enumerate([(200, 40, 40), (40, 200, 40), (40, 40, 200)]):
            zf.writestr(f"photos/{i}.png", _png((48, 32), colour))
        zf.writestr("photos/broken.png", b"not a png")
        zf.writestr("photos/readme.txt", "not an image: skipped")
    results = tmp_path / "results"
    batch = vtp(
        "predict", "batch", "--model", f"{name}/1", "--images", str(photos), "-P", p, "--conf", "0.01",
        "--wait", "--poll", "1", "--dest", str(results), "-o", "json", timeout=600,
    )  # fmt: skip
    assert batch.returncode == 0, f"stdout:\n{batch.stdout}\nstderr:\n{batch.stderr}"
    assert f"on {photos.name}" in batch.stderr and "4/4 images" in batch.stderr, batch.stderr
    doc = json.loads(batch.stdout)
    assert doc["state"] == "succeeded" and doc["images_done"] == doc["images_total"] == 4, doc
    assert (doc["summary"]["images"], doc["summary"]["failed_images"]) == (4, 1), doc["summary"]
    rows = {r["image"]: r for r in map(json.loads, (results / "predictions.jsonl").read_text().splitlines())}
    assert sorted(rows) == ["photos/0.png", "photos/1.png", "photos/2.png", "photos/broken.png"]
    assert "not a readable image" in rows["photos/broken.png"]["error"]
    assert all(
        rows[f"photos/{i}.png"]["width"] == 48 and "error" not in rows[f"photos/{i}.png"] for i in range(3)
    )
    with (results / "predictions.csv").open(newline="") as handle:
        assert [r["image"] for r in csv.DictReader(handle)] == list(rows)
    queued = re.search(r"batch run (\d+) queued", batch.stderr)
    assert queued, batch.stderr
    _listed_without_a_dataset_version(api, pid, int(queued.group(1)), job["id"])

    exported = json.loads(
        ok(vtp("models", "export", str(job["id"]), "-P", p, "--format", "onnx", "-o", "json")).stdout
    )
    assert [e["format"] for e in exported["exports"]] == ["onnx"], exported
    from_version = tmp_path / "from-version"
    from_version.mkdir()
    saved = ok(
        vtp("models", "download", f"{registered}/1", "-P", p, "--format", "onnx", "--dest", str(from_version))
    )
    (onnx_file,) = from_version.iterdir()
    assert onnx_file.name.startswith(f"{registered}-v1-") and onnx_file.suffix == ".onnx", saved.stdout
    onnx.checker.check_model(onnx.load(str(onnx_file)))  # a whole, valid ONNX graph
    # A version registered after the export has it too (the same weights), and the job's own
    # export is the same file.
    late = f"{name}-late"
    ok(vtp("models", "register", str(job["id"]), "-n", late, "-P", p))
    for ref, folder in ((f"{late}/1", "from-late"), (str(job["id"]), "from-job")):
        (tmp_path / folder).mkdir()
        ok(vtp("models", "download", ref, "-P", p, "--format", "onnx", "--dest", str(tmp_path / folder)))
        assert [f.read_bytes() for f in (tmp_path / folder).iterdir()] == [onnx_file.read_bytes()], ref

    # An alias taken away: the version stays, the reference no longer resolves.
    ok(vtp("models", "alias", "set", registered, "staging", "1", "-P", p))
    removed = ok(vtp("models", "alias", "rm", registered, "staging", "-P", p)).stdout
    assert f"Removed models/{registered}@staging" in removed, removed
    gone = vtp("models", "resolve", f"{registered}@staging", "-P", p)
    assert gone.returncode == 1 and "has no alias 'staging'" in gone.stderr, gone.stderr
    listed = {r["name"]: r for r in json.loads(ok(vtp("models", "ls", "-P", p, "-o", "json")).stdout)}
    assert listed[registered]["aliases"] == {} and listed[registered]["latest_version"] == 1
    again = vtp("models", "alias", "rm", registered, "staging", "-P", p)
    assert again.returncode == 1 and "staging" in again.stderr, again.stderr
