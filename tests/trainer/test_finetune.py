"""Fine-tuning and uploaded weights through the real trainer service: `init_weights` (protocol
v1.5) on real Ultralytics and timm training, and `POST /inspect` on good, corrupt and foreign
files. One scratch job is trained once and shared by the module."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.trainer.conftest import (
    BUCKET,
    CallbackReceiver,
    S3Server,
    TrainerService,
    upload_digits_dataset,
)

pytestmark = pytest.mark.models

TINY = {"imgsz": 64, "batch": 8, "seed": 0, "mosaic": 0.0, "warmup_epochs": 0.0}


def _run(
    trainer: TrainerService, receiver: CallbackReceiver, job_id: str, dataset_uri: str, **overrides: Any
) -> dict[str, Any]:
    request = trainer.job_request(job_id, dataset_uri, receiver, **overrides)
    response = trainer.client.post("/jobs", json=request)
    assert response.status_code == 202, response.text
    try:
        (finished,) = receiver.wait_for(job_id, "finished", timeout_s=600)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{trainer.log_path.read_text()[-4000:]}") from exc
    assert finished["state"] == "succeeded", (finished["error"], trainer.log_path.read_text()[-4000:])
    return finished


def _first_epoch_loss(receiver: CallbackReceiver, job_id: str) -> float:
    first = next(e for e in receiver.of(job_id, "epoch") if e["epoch"] == 0)
    return float(first["metrics"]["train_loss"])


def _put(s3: S3Server, key: str, data: bytes) -> str:
    s3.client.put_object(Bucket=BUCKET, Key=key, Body=data)
    return f"s3://{BUCKET}/{key}"


def _inspect(trainer: TrainerService, uri: str, filename: str, **extra: Any) -> Any:
    return trainer.client.post(
        "/inspect", json={"weights_uri": uri, "filename": filename, **extra}, timeout=120
    )


def _in_child(code: str, cwd: Path) -> None:
    """torch/ultralytics work in a child: importing ultralytics patches PIL for the whole test run."""
    done = subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]


@pytest.fixture(scope="module")
def digits_uri(s3_server: S3Server) -> str:
    return upload_digits_dataset(s3_server, "projects/1/datasets/ft-digits/v1", per_class=6)


TIMM = {"framework": "timm", "task": "classify", "model": "resnet18"}
TIMM_HYPER = {"imgsz": 32, "batch": 16, "lr0": 0.001, "seed": 0}


@pytest.fixture(scope="module")
def scratch_job(
    trainer_service: TrainerService, callback_receiver: CallbackReceiver, digits_uri: str
) -> dict[str, Any]:
    """Three epochs of a timm classifier from scratch: the job the fine-tuning test starts from."""
    return _run(
        trainer_service,
        callback_receiver,
        "ft-scratch",
        digits_uri,
        **TIMM,
        hyperparameters={**TIMM_HYPER, "epochs": 3},
    )


@pytest.fixture(scope="module")
def coco_like(tmp_path_factory: pytest.TempPathFactory, s3_server: S3Server) -> bytes:
    """An untrained 80-class YOLO checkpoint, shaped as COCO weights are (none can be downloaded)."""
    folder = tmp_path_factory.mktemp("coco-like")
    path = folder / "coco-like.pt"
    _in_child(f"from ultralytics import YOLO; YOLO('yolo11n.yaml').save({str(path)!r})", folder)
    return path.read_bytes()


def test_fine_tuning_from_a_jobs_weights_starts_from_a_lower_loss(
    trainer_service: TrainerService,
    callback_receiver: CallbackReceiver,
    digits_uri: str,
    scratch_job: dict[str, Any],
) -> None:
    best = scratch_job["artifacts"]["best_checkpoint"]
    _run(
        trainer_service,
        callback_receiver,
        "ft-from-job",
        digits_uri,
        **TIMM,
        hyperparameters={**TIMM_HYPER, "epochs": 1},
        init_weights=best,
    )
    scratch = _first_epoch_loss(callback_receiver, "ft-scratch")
    tuned = _first_epoch_loss(callback_receiver, "ft-from-job")
    # Same data, seed and settings: only the starting weights differ.
    assert tuned < scratch, (tuned, scratch)


def test_uploaded_checkpoint_with_another_class_count_fine_tunes(
    trainer_service: TrainerService,
    callback_receiver: CallbackReceiver,
    dataset_uri: str,
    s3_server: S3Server,
    coco_like: bytes,
) -> None:
    """An 80-class YOLO checkpoint (as COCO weights are) fine-tunes on the 2-class shapes data:
    the head is rebuilt for 2 classes, the rest of the weights carried over."""
    uri = _put(s3_server, "uploads/coco-like.pt", coco_like)
    found = _inspect(trainer_service, uri, "coco-like.pt")
    assert found.status_code == 200, found.text
    assert (found.json()["framework"], found.json()["num_classes"]) == ("ultralytics", 80)

    finished = _run(
        trainer_service,
        callback_receiver,
        "ft-upload",
        dataset_uri,
        hyperparameters={**TINY, "epochs": 1},
        init_weights=uri,
    )
    result = _inspect(trainer_service, finished["artifacts"]["best_checkpoint"], "best.pt")
    assert result.status_code == 200, result.text
    assert result.json()["classes"] == ["circle", "square"]
    log = s3_server.client.get_object(Bucket=BUCKET, Key="projects/1/jobs/ft-upload/logs/trainer.jsonl")
    lines = [json.loads(line) for line in log["Body"].read().decode().splitlines() if line.strip()]
    transferred = [line["message"] for line in lines if "Transferred" in str(line.get("message"))]
    assert transferred, "Ultralytics reported no weights carried over from the upload"


def test_timm_safetensors_with_another_class_count_fine_tunes(
    trainer_service: TrainerService,
    callback_receiver: CallbackReceiver,
    s3_server: S3Server,
    digits_uri: str,
    tmp_path: Path,
) -> None:
    """A 5-class timm state_dict in .safetensors, fine-tuned on 10 digit classes."""
    path = tmp_path / "r18.safetensors"
    _in_child(
        "import timm; from safetensors.torch import save_file; "
        "m = timm.create_model('resnet18', pretrained=False, num_classes=5); "
        f"save_file(m.state_dict(), {str(path)!r})",
        tmp_path,
    )
    uri = _put(s3_server, "uploads/r18.safetensors", path.read_bytes())
    found = _inspect(trainer_service, uri, "r18.safetensors", architecture="resnet18")
    assert found.status_code == 200, found.text
    assert found.json()["load_mode"].startswith("safetensors")
    assert (found.json()["architecture"], found.json()["num_classes"]) == ("resnet18", 5)

    _run(
        trainer_service,
        callback_receiver,
        "ft-timm",
        digits_uri,
        **TIMM,
        hyperparameters={**TIMM_HYPER, "epochs": 1},
        init_weights=uri,
    )
    log = s3_server.client.get_object(Bucket=BUCKET, Key="projects/1/jobs/ft-timm/logs/trainer.jsonl")
    tuning = [json.loads(line) for line in log["Body"].read().decode().splitlines() if "fine-tuning" in line]
    # Every tensor but the 5-class head (weight and bias) came from the upload.
    assert tuning and sorted(tuning[0]["tensors_skipped"]) == ["fc.bias", "fc.weight"], tuning


def test_corrupt_and_foreign_files_are_refused_naming_the_problem(
    trainer_service: TrainerService, s3_server: S3Server, coco_like: bytes, tmp_path: Path
) -> None:
    good = coco_like
    evil = tmp_path / "evil.pt"
    whole = tmp_path / "whole.pt"
    _in_child(
        "import os, torch, timm\n"
        "class Evil:\n"
        "    def __reduce__(self):\n"
        "        return (os.system, ('echo owned',))\n"
        f"torch.save({{'model': Evil()}}, {str(evil)!r})\n"
        f"torch.save(timm.create_model('resnet18', pretrained=False), {str(whole)!r})\n",
        tmp_path,
    )
    png = io.BytesIO()
    from PIL import Image

    Image.new("RGB", (8, 8)).save(png, format="PNG")
    cases = {
        "truncated.pt": (good[: len(good) // 2], "not a PyTorch checkpoint"),
        "picture.pt": (png.getvalue(), "not a PyTorch checkpoint"),
        "evil.pt": (evil.read_bytes(), "posix.system"),
        "whole.pt": (whole.read_bytes(), "state_dict"),
        "notes.txt": (b"hello", "upload a .pt/.pth"),
        "broken.safetensors": (b"\x00" * 20, "safetensors"),
    }
    for name, (data, expected) in cases.items():
        uri = _put(s3_server, f"uploads/bad/{name}", data)
        answer = _inspect(trainer_service, uri, name)
        assert answer.status_code == 422, (name, answer.text)
        detail = json.dumps(answer.json()["detail"])
        assert expected in detail, (name, detail)

    fine = _inspect(trainer_service, _put(s3_server, "uploads/good.pt", good), "good.pt")
    assert fine.status_code == 200, fine.text
    body = fine.json()
    assert (body["framework"], body["task"], body["architecture"]) == (
        "ultralytics",
        "detect",
        "yolo11n.yaml",
    )
    assert body["num_classes"] == 80 and body["parameters"] > 1_000_000
    assert "weights_only=True" in body["load_mode"]
    assert any("weights_only=False" in mode for mode in body["refused_modes"])
