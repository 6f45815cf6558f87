"""More export formats and batch inference, through the real trainer service (real nanio S3, real
Ultralytics, timm, OpenVINO and ncnn): one tiny detector and one tiny classifier trained for one
epoch, shared by every test of the module."""

from __future__ import annotations

import csv
import io
import json
import zipfile
from typing import Any

import pytest

from tests.trainer.conftest import (
    BUCKET,
    CallbackReceiver,
    S3Server,
    TrainerService,
    upload_digits_dataset,
    wait_until,
)

# The first test also trains the shared models (module fixtures): room for a loaded machine.
pytestmark = [pytest.mark.models, pytest.mark.trainer, pytest.mark.timeout(1200)]

NEW_FORMATS = ["openvino", "openvino_fp16", "ncnn", "ncnn_fp16"]


def _object(s3: S3Server, key_or_uri: str) -> bytes:
    key = key_or_uri.removeprefix(f"s3://{BUCKET}/")
    return s3.client.get_object(Bucket=BUCKET, Key=key)["Body"].read()


def _start(trainer: TrainerService, request: dict[str, Any]) -> None:
    """POST /jobs once the module's one slot is free (the last job may still be exiting)."""
    wait_until(lambda: trainer.client.get("/healthz").json()["running_jobs"] == 0, 600, "a free slot")
    response = trainer.client.post("/jobs", json=request)
    assert response.status_code == 202, response.text


def _finished(
    receiver: CallbackReceiver, trainer: TrainerService, job_id: str, timeout_s: float = 900
) -> Any:
    try:
        (finished,) = receiver.wait_for(job_id, "finished", timeout_s=timeout_s)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{trainer.log_path.read_text()[-4000:]}") from exc
    return finished


@pytest.fixture(scope="module")
def detector(trainer_service: TrainerService, callback_receiver: CallbackReceiver, dataset_uri: str) -> str:
    """best.pt of a YOLO detector trained for one epoch on the synthetic shapes."""
    request = trainer_service.job_request("exp-det", dataset_uri, callback_receiver)
    request["hyperparameters"] = {"epochs": 1, "imgsz": 64, "batch": 8, "seed": 0, "mosaic": 0.0}
    _start(trainer_service, request)
    finished = _finished(callback_receiver, trainer_service, "exp-det")
    assert finished["state"] == "succeeded", finished
    return str(finished["artifacts"]["best_checkpoint"])


@pytest.fixture(scope="module")
def classifier(
    trainer_service: TrainerService, callback_receiver: CallbackReceiver, s3_server: S3Server
) -> str:
    """best.pt of a timm classifier trained for one epoch on real handwritten digits."""
    uri = upload_digits_dataset(s3_server, "projects/2/datasets/9/v1", per_class=4, size=32)
    request = trainer_service.job_request(
        "exp-cls",
        uri,
        callback_receiver,
        framework="timm",
        task="classify",
        model="resnet18",
        hyperparameters={"epochs": 1, "imgsz": 32, "batch": 16, "seed": 0},
    )
    _start(trainer_service, request)
    finished = _finished(callback_receiver, trainer_service, "exp-cls")
    assert finished["state"] == "succeeded", finished
    return str(finished["artifacts"]["best_checkpoint"])


def _export(
    trainer: TrainerService, model_uri: str, prefix: str, formats: list[str]
) -> dict[str, dict[str, Any]]:
    response = trainer.client.post(
        "/export",
        json={"model_uri": model_uri, "formats": formats, "output_uri": f"s3://{BUCKET}/{prefix}"},
        timeout=540,  # pnnx takes seconds per model alone; far longer on a shared, loaded machine
    )
    assert response.status_code == 200, response.text
    return {e["format"]: e for e in response.json()["exports"]}


def _check_exports(s3: S3Server, exports: dict[str, dict[str, Any]], prefix: str) -> None:
    for fmt, export in exports.items():
        parity = export["parity"]
        assert parity["ok"] is True, export
        assert parity["max_abs_diff"] <= parity["tolerance"]
        assert parity["relative_tolerance"] == (1e-2 if fmt.endswith("_fp16") else 1e-3)
        assert export["uri"] == f"s3://{BUCKET}/{prefix}model_{fmt}.zip"
        with zipfile.ZipFile(io.BytesIO(_object(s3, export["uri"]))) as zf:
            names = set(zf.namelist())
        wanted = (
            {"model.xml", "model.bin"}
            if fmt.startswith("openvino")
            else {"model.ncnn.param", "model.ncnn.bin"}
        )
        assert wanted <= names, names


def test_detector_exports_to_openvino_and_ncnn_with_parity(
    trainer_service: TrainerService, s3_server: S3Server, detector: str
) -> None:
    prefix = "projects/1/jobs/exp-det/exports/"
    exports = _export(trainer_service, detector, prefix, NEW_FORMATS)
    assert set(exports) == set(NEW_FORMATS)
    _check_exports(s3_server, exports, prefix)
    # FP16 weights take about half the bytes.
    for base in ("openvino", "ncnn"):
        assert exports[f"{base}_fp16"]["size_bytes"] < 0.7 * exports[base]["size_bytes"]
    assert exports["openvino"]["parity"]["output_shape"][:2] == [1, 6]  # 4 box coords + 2 classes

    catalogue = trainer_service.client.get("/plugins").json()["frameworks"]
    assert all(set(NEW_FORMATS) <= set(f["export_formats"]) for f in catalogue if f["name"] != "template")


def test_classifier_exports_to_openvino_and_ncnn_with_parity(
    trainer_service: TrainerService, s3_server: S3Server, classifier: str
) -> None:
    prefix = "projects/2/jobs/exp-cls/exports/"
    # timm takes another path (from the torch module, not Ultralytics' exporter); FP16 is a flag
    # on the same path, checked on the detector above.
    exports = _export(trainer_service, classifier, prefix, ["openvino", "ncnn"])
    assert set(exports) == {"openvino", "ncnn"}
    _check_exports(s3_server, exports, prefix)
    assert exports["ncnn"]["parity"]["output_shape"] == [1, 10]


def _batch_request(
    trainer: TrainerService, job_id: str, images_uri: str, receiver: CallbackReceiver, **inference: Any
) -> dict[str, Any]:
    request = trainer.job_request(job_id, images_uri, receiver)
    request.update(kind="batch_inference", inference=inference)
    return request


def test_batch_inference_over_a_dataset_version(
    trainer_service: TrainerService,
    callback_receiver: CallbackReceiver,
    s3_server: S3Server,
    dataset_uri: str,
    detector: str,
) -> None:
    request = _batch_request(
        trainer_service, "batch-1", dataset_uri, callback_receiver, model_uri=detector, conf=0.0
    )
    _start(trainer_service, request)
    finished = _finished(callback_receiver, trainer_service, "batch-1")
    assert finished["state"] == "succeeded", finished

    manifest = json.loads(_object(s3_server, dataset_uri + "manifest.json"))
    names = [image["path"] for image in manifest["images"]]
    (started,) = callback_receiver.of("batch-1", "started")
    assert started["total_epochs"] == len(names)  # progress: images in all

    artifacts = finished["artifacts"]
    lines = _object(s3_server, artifacts["predictions_jsonl"]).decode().splitlines()
    rows = [json.loads(line) for line in lines]
    assert [r["image"] for r in rows] == names  # one line per image, in manifest order
    corrupt = [r for r in rows if r.get("error")]
    assert len(corrupt) == 1 and "not a readable image" in corrupt[0]["error"]  # the fixture's broken file
    good = [r for r in rows if not r.get("error")]
    assert all("boxes" in r and r["width"] > 0 and r["split"] in {"train", "val"} for r in good)

    table = list(csv.DictReader(io.StringIO(_object(s3_server, artifacts["predictions_csv"]).decode())))
    assert [r["image"] for r in table] == names
    assert [int(r["predictions"]) for r in table if not r["error"]] == [len(r["boxes"]) for r in good]

    summary = json.loads(_object(s3_server, artifacts["inference_summary"]))
    assert summary["images"] == len(names) and summary["failed_images"] == 1
    assert set(summary["counts"]) == {"circle", "square"}
    assert sum(summary["counts"].values()) == summary["predictions"] == sum(len(r["boxes"]) for r in good)
    assert sum(summary["score_histogram"]["counts"]) == summary["predictions"]
    assert len(summary["score_histogram"]["edges"]) == len(summary["score_histogram"]["counts"]) + 1
    assert 1 <= len(summary["gallery"]) <= 8
    assert _object(s3_server, summary["gallery"][0]["drawn_uri"])[:4] == b"\x89PNG"
    assert finished["metrics"]["images"] == len(names) and finished["metrics"]["images_per_s"] > 0


def _zip_of_images(count: int, size: int = 48) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for i in range(count):
            png = io.BytesIO()
            Image.new("RGB", (size, size), (i * 7 % 255, 90, 200)).save(png, format="PNG")
            zf.writestr(f"photos/{i:04d}.png", png.getvalue())
        zf.writestr("photos/readme.txt", "not an image: skipped")
    return buf.getvalue()


def test_batch_inference_over_a_zip_and_cancel(
    trainer_service: TrainerService,
    callback_receiver: CallbackReceiver,
    s3_server: S3Server,
    classifier: str,
) -> None:
    s3_server.client.put_object(Bucket=BUCKET, Key="inputs/few.zip", Body=_zip_of_images(5))
    request = _batch_request(
        trainer_service, "batch-zip", f"s3://{BUCKET}/inputs/few.zip", callback_receiver,
        model_uri=classifier, source="zip",
    )  # fmt: skip
    _start(trainer_service, request)
    finished = _finished(callback_receiver, trainer_service, "batch-zip")
    assert finished["state"] == "succeeded", finished
    rows = [
        json.loads(x) for x in _object(s3_server, finished["artifacts"]["predictions_jsonl"]).splitlines()
    ]
    assert [r["image"] for r in rows] == [f"photos/{i:04d}.png" for i in range(5)]  # readme.txt skipped
    assert all(len(r["probabilities"]) == 10 for r in rows)
    table = list(
        csv.DictReader(io.StringIO(_object(s3_server, finished["artifacts"]["predictions_csv"]).decode()))
    )
    assert len(table) == 5 and all(r["top_class"] in {str(d) for d in range(10)} for r in table)

    # Cancel: many images, stopped right after it starts; nothing half-written is left.
    s3_server.client.put_object(Bucket=BUCKET, Key="inputs/many.zip", Body=_zip_of_images(1000, size=16))
    request = _batch_request(
        trainer_service, "batch-cancel", f"s3://{BUCKET}/inputs/many.zip", callback_receiver,
        model_uri=classifier, source="zip",
    )  # fmt: skip
    _start(trainer_service, request)
    callback_receiver.wait_for("batch-cancel", "started", timeout_s=600)
    assert trainer_service.client.post("/jobs/batch-cancel/cancel").status_code == 202
    finished = _finished(callback_receiver, trainer_service, "batch-cancel")
    assert finished["state"] == "cancelled", finished
    assert not {"predictions_jsonl", "predictions_csv", "inference_summary"} & set(finished["artifacts"])
    listed = s3_server.client.list_objects_v2(Bucket=BUCKET, Prefix="projects/1/jobs/batch-cancel/inference/")
    assert listed.get("KeyCount", 0) == 0


def test_batch_inference_refuses_a_bad_zip(
    trainer_service: TrainerService, callback_receiver: CallbackReceiver, s3_server: S3Server, classifier: str
) -> None:
    s3_server.client.put_object(
        Bucket=BUCKET, Key="inputs/not-a.zip", Body=b"these are not the bytes of a zip"
    )
    request = _batch_request(
        trainer_service, "batch-bad", f"s3://{BUCKET}/inputs/not-a.zip", callback_receiver,
        model_uri=classifier, source="zip",
    )  # fmt: skip
    _start(trainer_service, request)
    finished = _finished(callback_receiver, trainer_service, "batch-bad")
    assert finished["state"] == "failed"
    assert finished["error"]["kind"] == "user"
    assert "not a zip file" in finished["error"]["message"]

    # A batch job without its `inference` is refused at the door, naming the field.
    missing = trainer_service.job_request("batch-none", f"s3://{BUCKET}/inputs/few.zip", callback_receiver)
    missing["kind"] = "batch_inference"
    response = trainer_service.client.post("/jobs", json=missing)
    assert response.status_code == 422 and "inference" in response.text
