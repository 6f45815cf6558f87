"""Real training through the trainer service: real S3 (nanio), real Ultralytics, real callbacks."""

from __future__ import annotations

import json
import math

import pytest

from tests.trainer.conftest import BUCKET, CallbackReceiver, S3Server, TrainerService, wait_until

pytestmark = pytest.mark.trainer

LOSSES = ("train_box_loss", "train_cls_loss", "train_dfl_loss")
VAL_METRICS = ("precision", "recall", "map50", "map50_95", "lr", "epoch_time_s")


def _debug(trainer: TrainerService) -> str:
    return trainer.log_path.read_text()[-4000:]


def test_train_two_epochs_end_to_end(
    trainer_service: TrainerService,
    callback_receiver: CallbackReceiver,
    dataset_uri: str,
    s3_server: S3Server,
) -> None:
    request = trainer_service.job_request("train-1", dataset_uri, callback_receiver)
    response = trainer_service.client.post("/jobs", json=request)
    assert response.status_code == 202, response.text
    assert response.json() == {
        "job_id": "train-1",
        "attempt": 1,
        "state": "accepted",
        "epoch": None,
    }

    # Same job_id:attempt again: 202 with the current state, nothing new started.
    again = trainer_service.client.post("/jobs", json=request)
    assert again.status_code == 202 and again.json()["job_id"] == "train-1"
    # Another job while the only slot is busy: 429 with Retry-After.
    other = trainer_service.job_request("train-2", dataset_uri, callback_receiver)
    busy = trainer_service.client.post("/jobs", json=other)
    assert busy.status_code == 429, busy.text
    assert busy.headers["Retry-After"] == "7"
    assert trainer_service.client.get("/healthz").json()["running_jobs"] == 1

    try:
        (finished,) = callback_receiver.wait_for("train-1", "finished", timeout_s=240)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{_debug(trainer_service)}") from exc
    assert finished["state"] == "succeeded", (finished, _debug(trainer_service))
    assert finished["error"] is None

    started = callback_receiver.of("train-1", "started")
    assert len(started) == 1
    assert started[0]["state"] == "running" and started[0]["device"] == "cpu"
    assert started[0]["mlflow_run_id"] is None  # MLflow is off in this test

    epochs = callback_receiver.of("train-1", "epoch")
    assert [e["epoch"] for e in epochs] == [0, 1]  # no duplicate for the final best.pt evaluation
    for event in epochs:
        assert event["total_epochs"] == 2
        for name in LOSSES + VAL_METRICS:
            assert math.isfinite(event["metrics"][name]), (name, event["metrics"])
        assert event["metrics"]["train_box_loss"] > 0

    heartbeats = callback_receiver.of("train-1", "heartbeat")
    assert heartbeats, "at least one heartbeat during the run"
    assert all(h["state"] == "running" and h["device"] == "cpu" for h in heartbeats)
    assert any(h["log_tail"] for h in heartbeats)
    assert len({e["event_id"] for e in callback_receiver.of("train-1")}) == len(
        callback_receiver.of("train-1")
    )
    assert callback_receiver.bad_signatures == 0

    prefix = "projects/1/jobs/train-1/"
    expected = {
        "last_checkpoint": "checkpoints/last.pt",
        "best_checkpoint": "checkpoints/best.pt",
        "results_csv": "artifacts/results.csv",
        "log": "logs/trainer.jsonl",
    }
    assert finished["artifacts"] == {k: f"s3://{BUCKET}/{prefix}{v}" for k, v in expected.items()}
    assert {prefix + v for v in expected.values()} <= s3_server.keys(prefix)
    log_body = s3_server.client.get_object(Bucket=BUCKET, Key=prefix + "logs/trainer.jsonl")["Body"]
    lines = [json.loads(line) for line in log_body.read().decode().splitlines()]
    assert all(line["job_id"] == "train-1" for line in lines)
    assert any(line["message"] == "epoch finished" for line in lines)

    status = trainer_service.client.get("/jobs/train-1").json()
    assert status == {"job_id": "train-1", "attempt": 1, "state": "succeeded", "epoch": 1}
    # The slot is free again and the scratch data (dataset, runs, the secret-bearing spec) is gone.
    wait_until(
        lambda: trainer_service.client.get("/healthz").json()["running_jobs"] == 0, 10, "slot"
    )
    work_dir = trainer_service.scratch / "jobs" / "train-1-1"
    assert not (work_dir / "dataset").exists() and not (work_dir / "spec.json").exists()


def test_cancel_then_resume(
    trainer_service: TrainerService,
    callback_receiver: CallbackReceiver,
    dataset_uri: str,
    s3_server: S3Server,
) -> None:
    hyper = {"epochs": 5, "imgsz": 64, "batch": 4, "seed": 0, "mosaic": 0.0}
    request = trainer_service.job_request("cancel-1", dataset_uri, callback_receiver)
    request["hyperparameters"] = hyper
    assert trainer_service.client.post("/jobs", json=request).status_code == 202
    wait_until(lambda: callback_receiver.of("cancel-1", "epoch"), 180, "first epoch", step=0.02)
    cancel = trainer_service.client.post("/jobs/cancel-1/cancel")
    assert cancel.status_code == 202 and cancel.json()["attempt"] == 1

    (finished,) = callback_receiver.wait_for("cancel-1", "finished", timeout_s=60)
    assert finished["state"] == "cancelled", (finished, _debug(trainer_service))
    assert finished["error"] is None
    done = [e["epoch"] for e in callback_receiver.of("cancel-1", "epoch")]
    assert done and done == list(range(len(done))) and len(done) < 5
    last = finished["artifacts"]["last_checkpoint"]
    assert last == f"s3://{BUCKET}/projects/1/jobs/cancel-1/checkpoints/last.pt"
    assert trainer_service.client.get("/jobs/cancel-1").json()["state"] == "cancelled"

    # Attempt 2 resumes from the uploaded last.pt and continues with the next epoch.
    retry = {**request, "attempt": 2, "resume_from_uri": last}
    assert trainer_service.client.post("/jobs", json=retry).status_code == 202
    finished2 = wait_until(
        lambda: [e for e in callback_receiver.of("cancel-1", "finished") if e["attempt"] == 2],
        180,
        "attempt 2 to finish",
    )[0]
    assert finished2["state"] == "succeeded", (finished2, _debug(trainer_service))
    resumed = [e["epoch"] for e in callback_receiver.of("cancel-1", "epoch") if e["attempt"] == 2]
    assert resumed == list(range(done[-1] + 1, 5))
