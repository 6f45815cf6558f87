"""Failures are classified and reported: bad data is the user's, a killed child is lost."""

from __future__ import annotations

import json
import os
import signal

import pytest

from tests.trainer.conftest import (
    BUCKET,
    CallbackReceiver,
    S3Server,
    TrainerService,
    upload_synthetic_dataset,
    wait_until,
)

pytestmark = pytest.mark.trainer


def test_bad_labels_fail_as_user_error(
    trainer_service: TrainerService, callback_receiver: CallbackReceiver, s3_server: S3Server
) -> None:
    prefix = "projects/1/datasets/2/v1"
    uri = upload_synthetic_dataset(s3_server, prefix, n_train=2, n_val=0)
    manifest_key = f"{prefix}/manifest.json"
    manifest = json.loads(s3_server.client.get_object(Bucket=BUCKET, Key=manifest_key)["Body"].read())
    manifest["images"][0]["labels"] = [[7, 0.5, 0.5, 0.2, 0.2]]  # only classes 0 and 1 exist
    s3_server.client.put_object(Bucket=BUCKET, Key=manifest_key, Body=json.dumps(manifest).encode())

    request = trainer_service.job_request("bad-labels", uri, callback_receiver)
    assert trainer_service.client.post("/jobs", json=request).status_code == 202
    (finished,) = callback_receiver.wait_for("bad-labels", "finished", timeout_s=60)
    assert finished["state"] == "failed"
    assert finished["error"]["kind"] == "user"
    assert "class id 7" in finished["error"]["message"]
    assert "only 2 classes (0=circle, 1=square)" in finished["error"]["message"]
    assert set(finished["artifacts"]) == {"log"}  # nothing else was produced
    assert not callback_receiver.of("bad-labels", "epoch")


def test_killed_job_process_is_reported_lost(
    trainer_service: TrainerService, callback_receiver: CallbackReceiver, dataset_uri: str
) -> None:
    request = trainer_service.job_request("killed", dataset_uri, callback_receiver)
    request["hyperparameters"] = {**request["hyperparameters"], "epochs": 50}
    assert trainer_service.client.post("/jobs", json=request).status_code == 202
    callback_receiver.wait_for("killed", "started", timeout_s=60)
    status_file = trainer_service.scratch / "jobs" / "killed-1" / "status.json"
    os.kill(json.loads(status_file.read_text())["pid"], signal.SIGKILL)  # as the OOM killer would

    (finished,) = callback_receiver.wait_for("killed", "finished", timeout_s=30)
    assert finished["state"] == "failed"
    assert finished["error"]["kind"] == "lost"  # the backend resumes it from its checkpoint
    assert finished["error"]["message"].startswith("job process killed by SIGKILL (-9)")
    status = trainer_service.client.get("/jobs/killed").json()
    assert status["state"] == "failed" and status["error"] == finished["error"]
    wait_until(lambda: trainer_service.client.get("/healthz").json()["running_jobs"] == 0, 10, "slot")
