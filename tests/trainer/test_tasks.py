"""Classification (Ultralytics and timm) and segmentation trained for real through the service."""

from __future__ import annotations

import base64
import io
import json
import math
from typing import Any

import pytest

from tests.trainer.conftest import (
    BUCKET,
    CallbackReceiver,
    S3Server,
    TrainerService,
    upload_digits_dataset,
    upload_synthetic_dataset,
)

pytestmark = pytest.mark.trainer


@pytest.fixture(scope="module")
def digits_uri(s3_server: S3Server) -> str:
    return upload_digits_dataset(s3_server, "projects/2/datasets/1/v1")


def _json(s3: S3Server, uri: str) -> Any:
    key = uri.removeprefix(f"s3://{BUCKET}/")
    return json.loads(s3.client.get_object(Bucket=BUCKET, Key=key)["Body"].read())


def _train(
    trainer: TrainerService, receiver: CallbackReceiver, job_id: str, dataset_uri: str, **kw: Any
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    request = trainer.job_request(job_id, dataset_uri, receiver, **kw)
    response = trainer.client.post("/jobs", json=request)
    assert response.status_code == 202, response.text
    (finished,) = receiver.wait_for(job_id, "finished", timeout_s=240)
    assert finished["state"] == "succeeded", (finished, trainer.log_path.read_text()[-3000:])
    return finished, receiver.of(job_id, "epoch")


def _check_classification(s3: S3Server, finished: dict[str, Any], epochs: list[dict[str, Any]]) -> None:
    assert [e["epoch"] for e in epochs] == [0, 1]
    for event in epochs:
        metrics = event["metrics"]
        for name in ("top1", "top5"):
            assert 0.0 <= metrics[name] <= 1.0
        assert metrics["top5"] >= metrics["top1"]
        cm = _json(s3, event["validation"]["confusion_matrix_uri"])
        assert cm["names"] == [str(i) for i in range(10)]  # no background for classification
        assert sum(map(sum, cm["counts"])) == 30  # 3 val images per digit
        per_class = event["validation"]["per_class_accuracy"]
        assert set(per_class) == set(cm["names"])
        # Per-class accuracies weighted by support give top-1 back.
        assert math.isclose(sum(per_class.values()) * 3 / 30, metrics["top1"], abs_tol=1e-3)
    predictions = _json(s3, finished["artifacts"]["predictions"])
    for item in predictions["images"]:
        probs = item["probabilities"]
        assert len(probs) == 5 and probs[0]["score"] >= probs[-1]["score"]


def test_ultralytics_classify_on_real_digits(
    trainer_service: TrainerService,
    callback_receiver: CallbackReceiver,
    digits_uri: str,
    s3_server: S3Server,
) -> None:
    finished, epochs = _train(
        trainer_service,
        callback_receiver,
        "cls-yolo",
        digits_uri,
        task="classify",
        model="yolo11n-cls.yaml",
        hyperparameters={"epochs": 2, "imgsz": 32, "batch": 16, "seed": 0},
    )
    assert {"train_loss", "val_loss", "lr", "images_per_s"} <= set(epochs[0]["metrics"])
    _check_classification(s3_server, finished, epochs)


def test_timm_classify_export_and_predict(
    trainer_service: TrainerService,
    callback_receiver: CallbackReceiver,
    digits_uri: str,
    s3_server: S3Server,
) -> None:
    finished, epochs = _train(
        trainer_service,
        callback_receiver,
        "cls-timm",
        digits_uri,
        framework="timm",
        task="classify",
        model="resnet18",
        hyperparameters={"epochs": 2, "imgsz": 32, "batch": 16, "lr0": 0.003, "seed": 0},
    )
    assert {"train_loss", "val_loss", "lr", "epoch_time_s", "images_per_s"} <= set(epochs[0]["metrics"])
    _check_classification(s3_server, finished, epochs)
    assert epochs[1]["metrics"]["train_loss"] < epochs[0]["metrics"]["train_loss"]

    best = finished["artifacts"]["best_checkpoint"]
    response = trainer_service.client.post(
        "/export",
        json={"model_uri": best, "output_uri": f"s3://{BUCKET}/projects/2/jobs/cls-timm/exports/"},
        timeout=180,
    )
    assert response.status_code == 200, response.text
    assert response.json()["framework"] == "timm"
    for export in response.json()["exports"]:
        assert export["parity"]["ok"] is True and export["parity"]["output_shape"] == [1, 10]

    from PIL import Image
    from skimage import data

    buf = io.BytesIO()
    Image.fromarray(data.astronaut()).save(buf, format="PNG")  # a real 512x512 photo
    body = {"model_uri": best, "image_base64": base64.b64encode(buf.getvalue()).decode()}
    result = trainer_service.client.post("/predict", json=body, timeout=60).json()
    assert result["task"] == "classify" and (result["width"], result["height"]) == (512, 512)
    probs = result["probabilities"]
    assert len(probs) == 10 and math.isclose(sum(p["score"] for p in probs), 1.0, rel_tol=1e-4)
    assert {p["class_name"] for p in probs} == {str(i) for i in range(10)}


def test_ultralytics_segment_on_polygons(
    trainer_service: TrainerService, callback_receiver: CallbackReceiver, s3_server: S3Server
) -> None:
    uri = upload_synthetic_dataset(s3_server, "projects/3/datasets/1/v1", task="segment", seed=3)
    finished, epochs = _train(
        trainer_service,
        callback_receiver,
        "seg-1",
        uri,
        task="segment",
        model="yolo11n-seg.yaml",
        hyperparameters={"epochs": 2, "imgsz": 64, "batch": 8, "seed": 0, "mosaic": 0.0},
    )
    for event in epochs:
        metrics = event["metrics"]
        for name in ("train_seg_loss", "map50", "mask_map50", "mask_map50_95"):
            assert math.isfinite(metrics[name]), (name, metrics)
        cm = _json(s3_server, event["validation"]["confusion_matrix_uri"])
        assert cm["names"] == ["circle", "square", "background"]
        per_class = _json(s3_server, event["validation"]["per_class_uri"])["classes"]
        assert all("mask_ap50" in row for row in per_class.values())
    assert finished["artifacts"]["best_checkpoint"].endswith("checkpoints/best.pt")
