"""Real training through the trainer service: real S3 (nanio), real Ultralytics, real callbacks."""

from __future__ import annotations

import base64
import io
import json
import math
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from tests.trainer.conftest import BUCKET, CallbackReceiver, S3Server, TrainerService, wait_until

pytestmark = pytest.mark.trainer

LOSSES = ("train_box_loss", "train_cls_loss", "train_dfl_loss")
VAL_METRICS = ("precision", "recall", "map50", "map50_95", "lr", "epoch_time_s")


def _object(s3: S3Server, key: str) -> bytes:
    return s3.client.get_object(Bucket=BUCKET, Key=key)["Body"].read()


def _json(s3: S3Server, key: str) -> Any:
    return json.loads(_object(s3, key))


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
        "error": None,
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
    # Within the 60 s checkpoint interval no last.pt goes up while training; the final one does.
    assert [e["checkpoint_epoch"] for e in epochs] == [None, None]
    assert finished["checkpoint_epoch"] == 1
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
        "dataset_report": "artifacts/dataset_report.json",
        "predictions": "artifacts/predictions/predictions.json",
        # v1.5: every validation image's predictions and ground truth (no test split here).
        "predictions_val": "artifacts/predictions/val.json",
    }
    assert finished["artifacts"] == {k: f"s3://{BUCKET}/{prefix}{v}" for k, v in expected.items()}
    assert {prefix + v for v in expected.values()} <= s3_server.keys(prefix)
    log_body = s3_server.client.get_object(Bucket=BUCKET, Key=prefix + "logs/trainer.jsonl")["Body"]
    lines = [json.loads(line) for line in log_body.read().decode().splitlines()]
    assert all(line["job_id"] == "train-1" for line in lines)
    assert any(line["message"] == "epoch finished" for line in lines)

    # The corrupt image was skipped and reported; the job still succeeded.
    report = finished["dataset"]
    assert report["counts"] == {"train": 11, "val": 4, "test": 0}
    assert [item["path"] for item in report["skipped"]] == ["images/train/0000.png"]
    assert _json(s3_server, prefix + "artifacts/dataset_report.json")["skipped"] == report["skipped"]

    # Per-epoch validation artifacts, filled every epoch (not only at the end).
    for event in epochs:
        validation = event["validation"]
        folder = f"{prefix}artifacts/epoch-{event['epoch']:03d}/"
        assert validation["confusion_matrix_uri"] == f"s3://{BUCKET}/{folder}confusion_matrix.json"
        cm = _json(s3_server, folder + "confusion_matrix.json")
        assert cm["names"] == ["circle", "square", "background"]
        assert cm["axes"] == ["predicted", "true"]
        assert len(cm["counts"]) == 3 and all(len(row) == 3 for row in cm["counts"])
        # Every true object of the val images is counted in its class column.
        assert sum(row[c] for row in cm["counts"] for c in (0, 1)) >= 4
        per_class = _json(s3_server, folder + "per_class.json")
        assert per_class["headline"] == "ap50_95"
        for name, row in per_class["classes"].items():
            assert name in {"circle", "square"}
            assert 0.0 <= row["ap50"] <= 1.0 and 0.0 <= row["ap50_95"] <= row["ap50"] + 1e-9
            assert validation["per_class_ap50_95"][name] == row["ap50_95"]
        pr = _json(s3_server, folder + "pr_curve.json")
        assert len(pr["recall"]) == 101 and pr["recall"][0] == 0.0 and pr["recall"][-1] == 1.0
        assert all(len(values) == 101 for values in pr["precision"].values())

    # Predictions of the best model drawn on validation images, plus the same as JSON.
    predictions = _json(s3_server, prefix + "artifacts/predictions/predictions.json")
    assert predictions["classes"] == ["circle", "square"] and len(predictions["images"]) == 4
    for item in predictions["images"]:
        png = _object(s3_server, item["drawn_uri"].removeprefix(f"s3://{BUCKET}/"))
        with Image.open(io.BytesIO(png)) as drawn:
            assert drawn.format == "PNG" and drawn.size == (64, 64)
        for box in item["boxes"]:
            assert box["class_name"] in {"circle", "square"} and box["score"] >= 0.25

    status = trainer_service.client.get("/jobs/train-1").json()
    assert status == {"job_id": "train-1", "attempt": 1, "state": "succeeded", "epoch": 1, "error": None}
    # The slot is free again and the scratch data (dataset, runs, the secret-bearing spec) is gone.
    wait_until(lambda: trainer_service.client.get("/healthz").json()["running_jobs"] == 0, 10, "slot")
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


def test_export_detector_with_parity(trainer_service: TrainerService, s3_server: S3Server) -> None:
    """Export train-1's best.pt (trained above) to ONNX and TorchScript; outputs must match."""
    prefix = "projects/1/jobs/train-1/"
    response = trainer_service.client.post(
        "/export",
        json={
            "model_uri": f"s3://{BUCKET}/{prefix}checkpoints/best.pt",
            "formats": ["onnx", "torchscript"],
            "output_uri": f"s3://{BUCKET}/{prefix}exports/",
        },
        timeout=180,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["framework"] == "ultralytics"
    exports = {e["format"]: e for e in body["exports"]}
    assert set(exports) == {"onnx", "torchscript"}
    for fmt, export in exports.items():
        assert export["uri"] == f"s3://{BUCKET}/{prefix}exports/model.{fmt}"
        assert export["parity"]["ok"] is True, export
        assert export["parity"]["max_abs_diff"] <= export["parity"]["tolerance"]
        assert export["parity"]["output_shape"][:2] == [1, 6]  # 4 box coords + 2 classes
        assert export["size_bytes"] > 100_000
    import onnx

    onnx.checker.check_model(onnx.load_from_string(_object(s3_server, f"{prefix}exports/model.onnx")))

    bad = trainer_service.client.post(
        "/export",
        json={
            "model_uri": f"s3://{BUCKET}/{prefix}checkpoints/best.pt",
            "formats": ["tflite"],
            "output_uri": f"s3://{BUCKET}/{prefix}exports/",
        },
        timeout=60,
    )
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["body", "formats"]
    assert bad.json()["detail"][0]["ctx"]["allowed"] == [
        "onnx",
        "torchscript",
        "openvino",
        "openvino_fp16",
        "ncnn",
        "ncnn_fp16",
    ]


def test_predict_on_a_real_photo_with_cache(trainer_service: TrainerService, s3_server: S3Server) -> None:
    import ultralytics

    bus = Path(ultralytics.__file__).parent / "assets" / "bus.jpg"  # a real 810x1080 photo
    s3_server.client.put_object(Bucket=BUCKET, Key="inputs/bus.jpg", Body=bus.read_bytes())
    model_uri = f"s3://{BUCKET}/projects/1/jobs/train-1/checkpoints/best.pt"
    request = {"model_uri": model_uri, "image_uri": f"s3://{BUCKET}/inputs/bus.jpg", "conf": 0.0}
    first = trainer_service.client.post("/predict", json=request, timeout=120)
    assert first.status_code == 200, first.text
    result = first.json()
    assert result["task"] == "detect" and result["classes"] == ["circle", "square"]
    assert (result["width"], result["height"]) == (810, 1080)
    assert result["cached"] is False
    boxes = result["boxes"]
    assert boxes, "conf=0 keeps every candidate box"
    assert [b["score"] for b in boxes] == sorted((b["score"] for b in boxes), reverse=True)
    for box in boxes:
        x1, y1, x2, y2 = box["box"]
        assert 0 <= x1 <= x2 <= 810 and 0 <= y1 <= y2 <= 1080
        assert box["class_name"] == result["classes"][box["class_id"]]

    inline = {
        "model_uri": model_uri,
        "image_base64": base64.b64encode(bus.read_bytes()).decode(),
        "conf": 0.0,
    }
    second = trainer_service.client.post("/predict", json=inline, timeout=60).json()
    assert second["cached"] is True
    assert second["boxes"] == boxes  # same model, same photo, same answer

    missing = trainer_service.client.post(
        "/predict", json={**request, "model_uri": f"s3://{BUCKET}/nope/best.pt"}, timeout=30
    )
    assert missing.status_code == 422
    assert missing.json()["detail"][0]["loc"] == ["body", "model_uri"]
    garbage = {"model_uri": model_uri, "image_base64": base64.b64encode(b"not an image").decode()}
    response = trainer_service.client.post("/predict", json=garbage, timeout=30)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "image_base64"]
