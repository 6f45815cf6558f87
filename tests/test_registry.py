"""The model registry through the REST API of the whole stack (`vtp up`): register a trained job's
model, move aliases, resolve `models/<name>@<alias>`, all visible through MLflow's own client;
upload weights (checked by the trainer); fine-tune from an alias; role refusals; the audit trail.
One tiny job (1 epoch, 64 px) is trained for the whole module."""

from __future__ import annotations

import io
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from services.runtime import sample_data
from tests.utils.stack import Api, StackProcess

pytestmark = pytest.mark.models
PASSWORD = "registry-pass-123"


def _account(api: Api, stack: StackProcess, project_id: int, role: str) -> httpx.Client:
    """A new user with `role` in the project, signed in over REST."""
    username = f"{role}-{uuid.uuid4().hex[:6]}"
    api.http.put("/admin/settings", json={"signup_enabled": True}).raise_for_status()
    api.http.post("/auth/signup", json={"username": username, "password": PASSWORD}).raise_for_status()
    added = api.http.post(f"/projects/{project_id}/members", json={"username": username, "role": role})
    assert added.status_code == 201, added.text
    client = httpx.Client(base_url=stack.api_url + "/api/v1", timeout=120)
    token = client.post("/auth/login", json={"username": username, "password": PASSWORD}).json()[
        "access_token"
    ]
    client.headers["Authorization"] = f"Bearer {token}"
    return client


@pytest.fixture(scope="module")
def trained(api: Api) -> tuple[int, dict[str, Any], dict[str, Any]]:
    """(project id, dataset version, a succeeded 1-epoch job) shared by the module."""
    pid = api.project_id()
    data = sample_data.yolo_zip(train=8, val=4, seed=14)
    response = api.http.post(
        f"/projects/{pid}/datasets",
        data={"name": f"registry-{uuid.uuid4().hex[:6]}"},
        files={"file": ("shapes.zip", data, "application/zip")},
    )
    assert response.status_code == 201, response.text
    version = response.json()
    job = api.start_job(pid, version["id"], epochs=1)
    finished = api.wait_finished(pid, job["id"], timeout_s=400)
    assert finished["state"] == "succeeded", finished
    return pid, version, finished


def test_register_alias_resolve_and_mlflow_sees_it(
    api: Api, stack: StackProcess, trained: tuple[int, dict[str, Any], dict[str, Any]]
) -> None:
    from mlflow.tracking import MlflowClient

    pid, version, job = trained
    name = f"shapes-{uuid.uuid4().hex[:6]}"
    first = api.http.post(f"/projects/{pid}/models/register", json={"job_id": job["id"], "name": name})
    assert first.status_code == 201, first.text
    v1 = first.json()
    assert (v1["version"], v1["source"], v1["job_id"]) == (1, "job", job["id"])
    # Lineage: the job, its dataset version, its parameters and validation metrics.
    assert v1["dataset_version_id"] == version["id"]
    assert v1["params"]["epochs"] == 1 and v1["params"]["model"] == job["model"]
    assert "map50" in v1["val_metrics"], v1["val_metrics"]
    assert v1["classes"] == version["classes"] and v1["architecture"] == job["model"]
    second = api.http.post(
        f"/projects/{pid}/models/register", json={"job_id": job["id"], "name": name, "description": "again"}
    )
    assert second.status_code == 201 and second.json()["version"] == 2, second.text

    moved = api.http.put(f"/projects/{pid}/models/{name}/aliases/champion", json={"version": 1})
    assert moved.status_code == 200 and moved.json()["aliases"] == {"champion": 1}, moved.text
    moved = api.http.put(f"/projects/{pid}/models/{name}/aliases/champion", json={"version": 2})
    assert moved.json()["aliases"] == {"champion": 2}
    resolved = api.http.get(f"/projects/{pid}/models/resolve", params={"ref": f"models/{name}@champion"})
    assert resolved.status_code == 200 and resolved.json()["version"] == 2, resolved.text
    assert resolved.json()["aliases"] == ["champion"]
    missing = api.http.get(f"/projects/{pid}/models/resolve", params={"ref": f"models/{name}@staging"})
    assert missing.status_code == 404 and "staging" in missing.json()["detail"]
    # The playground takes the alias and runs the version it points at.
    image = io.BytesIO()
    Image.new("RGB", (64, 64), "white").save(image, format="PNG")
    files = {"image": ("white.png", image.getvalue(), "image/png")}
    predicted = api.http.post(
        f"/projects/{pid}/predict", data={"model": f"models/{name}@champion"}, files=files
    )
    assert predicted.status_code == 200, predicted.text
    assert predicted.json()["model_uri"] == resolved.json()["weights_uri"]

    # MLflow's own client sees the model, both versions, the alias and the weights artifact.
    client = MlflowClient(tracking_uri=stack.mlflow_url)
    mlflow_name = v1["mlflow_name"]
    assert client.get_model_version_by_alias(mlflow_name, "champion").version == "2"
    found = client.get_model_version(mlflow_name, "1")
    assert found.run_id == job["mlflow_run_id"] == v1["mlflow_run_id"]
    with tempfile.TemporaryDirectory() as tmp:
        local = Path(client.download_artifacts(found.run_id, "model", tmp))
        assert (local / "best.pt").stat().st_size > 100_000

    removed = api.http.delete(f"/projects/{pid}/models/{name}/aliases/champion")
    assert removed.status_code == 204, removed.text
    assert api.http.get(f"/projects/{pid}/models/{name}").json()["aliases"] == {}
    assert not client.get_registered_model(mlflow_name).aliases

    downloads = api.http.get(f"/projects/{pid}/models/{name}/versions/1/downloads").json()
    assert httpx.get(downloads["weights"]).content[:2] == b"PK"  # a torch.save zip archive

    trail = api.http.get(f"/projects/{pid}/audit", params={"action": "model."}).json()
    details = [(row["action"], row["detail"]) for row in trail if name in row["target"]]
    assert ("model.alias", "champion: v1 -> v2") in details, details
    assert ("model.alias", "champion: set to v1") in details
    assert ("model.unalias", "champion: removed (was v2)") in details
    assert ("model.register", f"v1 from job:{job['id']}") in details


def test_upload_checks_weights_and_a_job_fine_tunes_from_an_alias(
    api: Api, stack: StackProcess, trained: tuple[int, dict[str, Any], dict[str, Any]]
) -> None:
    pid, version, job = trained
    name = f"upload-{uuid.uuid4().hex[:6]}"
    before = _weight_objects(stack, pid)
    refused = api.http.post(
        f"/projects/{pid}/models/upload",
        data={"name": name},
        files={"file": ("broken.pt", b"PK\x03\x04 not really a checkpoint", "application/octet-stream")},
    )
    assert refused.status_code == 422, refused.text
    assert "not a PyTorch checkpoint" in refused.json()["detail"]
    assert _weight_objects(stack, pid) == before  # the refused object was deleted again
    assert api.http.get(f"/projects/{pid}/models/{name}").status_code == 404  # no version row

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "coco-like.pt"
        code = f"from ultralytics import YOLO; YOLO('yolo11n.yaml').save({str(path)!r})"
        subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, cwd=tmp)
        data = path.read_bytes()
    uploaded = api.http.post(
        f"/projects/{pid}/models/upload",
        data={"name": name, "description": "80-class start point"},
        files={"file": ("coco-like.pt", io.BytesIO(data), "application/octet-stream")},
    )
    assert uploaded.status_code == 201, uploaded.text
    body = uploaded.json()
    assert (body["source"], body["framework"], body["architecture"]) == (
        "upload",
        "ultralytics",
        "yolo11n.yaml",
    )
    assert len(body["classes"]) == 80 and body["registered_by"] == api.http.get("/auth/me").json()["username"]
    api.http.put(f"/projects/{pid}/models/{name}/aliases/base", json={"version": 1}).raise_for_status()

    # "Start from" an alias: 80 classes in, the dataset's 2 out.
    body = {
        "dataset_version_id": version["id"],
        "hyperparameters": {"imgsz": 64, "batch": 16, "epochs": 1},
        "start_from": f"models/{name}@base",
    }
    created = api.http.post(f"/projects/{pid}/jobs", json=body)
    assert created.status_code == 201, created.text
    assert created.json()["start_from"] == f"models/{name}@base (v1 of {name})"
    tuned = api.wait_finished(pid, created.json()["id"], timeout_s=400)
    assert tuned["state"] == "succeeded", tuned
    spec = [e for e in stack.callbacks(tuned["id"]) if e["type"] == "finished"]
    assert spec and spec[-1]["state"] == "succeeded"

    bad = api.http.post(f"/projects/{pid}/jobs", json={**body, "start_from": "models/nope@base"})
    assert bad.status_code == 404 and "nope" in bad.json()["detail"]


def test_roles_viewer_reads_member_registers_admin_moves_aliases(
    api: Api, stack: StackProcess, trained: tuple[int, dict[str, Any], dict[str, Any]]
) -> None:
    pid, _version, job = trained
    name = f"roles-{uuid.uuid4().hex[:6]}"
    viewer = _account(api, stack, pid, "viewer")
    member = _account(api, stack, pid, "member")

    refused = viewer.post(f"/projects/{pid}/models/register", json={"job_id": job["id"], "name": name})
    assert refused.status_code == 403, refused.text
    made = member.post(f"/projects/{pid}/models/register", json={"job_id": job["id"], "name": name})
    assert made.status_code == 201, made.text
    assert viewer.get(f"/projects/{pid}/models/{name}").status_code == 200
    assert viewer.get(f"/projects/{pid}/models").status_code == 200
    alias = member.put(f"/projects/{pid}/models/{name}/aliases/champion", json={"version": 1})
    assert alias.status_code == 403, alias.text
    assert (
        api.http.put(f"/projects/{pid}/models/{name}/aliases/champion", json={"version": 1}).status_code
        == 200
    )
    assert member.delete(f"/projects/{pid}/models/{name}/aliases/champion").status_code == 403
    bad = api.http.put(f"/projects/{pid}/models/{name}/aliases/latest", json={"version": 1})
    assert bad.status_code == 422 and "latest" in bad.json()["detail"]
    anonymous = httpx.get(f"{stack.api_url}/api/v1/projects/{pid}/models")
    assert anonymous.status_code == 401


def _weight_objects(stack: StackProcess, project_id: int) -> set[str]:
    """Keys under the project's model weights prefix, read straight from the stack's S3 server."""
    import boto3

    from services.infra.settings import Settings

    fields = Settings.model_fields  # `vtp up` in the tests runs with the default keys and bucket
    client = boto3.client(
        "s3",
        endpoint_url=stack.s3_url,
        aws_access_key_id=fields["s3_access_key"].default,
        aws_secret_access_key=fields["s3_secret_key"].default,
        region_name=fields["s3_region"].default,
    )
    pages = client.get_paginator("list_objects_v2").paginate(
        Bucket=fields["s3_bucket"].default, Prefix=f"projects/{project_id}/models/weights/"
    )
    return {item["Key"] for page in pages for item in page.get("Contents", [])}
