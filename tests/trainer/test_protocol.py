"""Request validation and callback signing, without training."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from trainer_runner.callbacks import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign, signed_headers
from trainer_runner.server import create_app
from trainer_runner.settings import TrainerSettings
from trainer_runner.storage import parse_s3_uri

pytestmark = pytest.mark.trainer

VALID = {
    "job_id": "42",
    "attempt": 1,
    "hyperparameters": {"epochs": 1},
    "dataset_uri": "s3://vtp/projects/1/datasets/3/v1/",
    "output_uri": "s3://vtp/projects/1/jobs/42/",
    "resume_from_uri": None,
    "callback_url": "http://127.0.0.1:9/api/v1/trainer/callbacks/42",
    "callback_secret": "abc",
}


@pytest.fixture
def client(tmp_path) -> TestClient:
    return TestClient(create_app(TrainerSettings(scratch_dir=tmp_path)))


@pytest.mark.isolation
@pytest.mark.parametrize("field", ["dataset_uri", "output_uri", "resume_from_uri"])
@pytest.mark.parametrize(
    "bad", ["/data/projects/1/", "file:///etc/passwd", "http://minio:9000/vtp/x", "s3://", "vtp/x"]
)
def test_non_s3_uri_is_422_naming_the_field(client: TestClient, field: str, bad: str) -> None:
    response = client.post("/jobs", json={**VALID, field: bad})
    assert response.status_code == 422
    assert any(err["loc"][-1] == field for err in response.json()["detail"]), response.json()


def _field_error(response, *loc: str) -> dict:
    assert response.status_code == 422, response.text
    (error,) = response.json()["detail"]
    assert error["loc"] == ["body", *loc], error
    return error


def test_unknown_framework_model_and_hyperparameters_are_422_naming_the_field(
    client: TestClient,
) -> None:
    error = _field_error(client.post("/jobs", json={**VALID, "framework": "caffe"}), "framework")
    assert {"ultralytics", "timm"} <= set(error["ctx"]["allowed"])
    response = client.post("/jobs", json={**VALID, "hyperparameters": {"data": "/etc/x.yaml"}})
    error = _field_error(response, "hyperparameters", "data")
    assert "epochs" in error["ctx"]["allowed"] and "data" not in error["ctx"]["allowed"]
    response = client.post("/jobs", json={**VALID, "hyperparameters": {"epochs": "many"}})
    assert "int" in _field_error(response, "hyperparameters", "epochs")["msg"]
    response = client.post("/jobs", json={**VALID, "hyperparameters": {"epochs": 0}})
    assert _field_error(response, "hyperparameters", "epochs")["ctx"]["allowed"]["min"] == 1
    response = client.post("/jobs", json={**VALID, "hyperparameters": {"optimizer": "Adagrad"}})
    assert "AdamW" in _field_error(response, "hyperparameters", "optimizer")["ctx"]["allowed"]
    response = client.post("/jobs", json={**VALID, "model": "yolo11n.pt"})
    assert "YAML" in _field_error(response, "model")["msg"]
    error = _field_error(client.post("/jobs", json={**VALID, "model": "yolo99z.yaml"}), "model")
    assert "yolo11n.yaml" in error["ctx"]["allowed"]
    error = _field_error(client.post("/jobs", json={**VALID, "task": "pose"}), "task")
    assert error["ctx"]["allowed"] == ["classify", "detect", "segment"]
    # A classification-only hyperparameter is unknown for detection.
    response = client.post("/jobs", json={**VALID, "hyperparameters": {"dropout": 0.1}})
    _field_error(response, "hyperparameters", "dropout")
    timm_job = {**VALID, "framework": "timm", "task": "classify", "model": "not_a_net_42"}
    error = _field_error(client.post("/jobs", json=timm_job), "model")
    assert "resnet18" in error["ctx"]["allowed"]


def test_plugins_endpoint_describes_a_form(client: TestClient) -> None:
    frameworks = {f["name"]: f for f in client.get("/plugins").json()["frameworks"]}
    assert set(frameworks) >= {"ultralytics", "timm"}
    tasks = {t["name"]: t for t in frameworks["ultralytics"]["tasks"]}
    assert set(tasks) == {"detect", "segment", "classify"}
    assert "yolo11n-cls.yaml" in tasks["classify"]["models"]
    assert "yolo11n-seg.yaml" in tasks["segment"]["models"]
    params = {p["name"]: p for p in tasks["detect"]["hyperparameters"]}
    assert params["epochs"] == {
        "name": "epochs",
        "type": "int",
        "default": 5,
        "min": 1,
        "max": 1000,
        "help": "passes over the training set",
    }
    assert params["optimizer"]["choices"][0] == "auto"
    assert "dropout" not in params and "mosaic" in params
    timm_tasks = {t["name"]: t for t in frameworks["timm"]["tasks"]}
    assert list(timm_tasks) == ["classify"] and frameworks["timm"]["any_model"] is True
    for framework in frameworks.values():
        # Every format the form offers is one the trainer converts and checks for parity.
        assert framework["export_formats"] == [
            "onnx",
            "torchscript",
            "openvino",
            "openvino_fp16",
            "ncnn",
            "ncnn_fp16",
        ], framework["export_formats"]
        for task in framework["tasks"]:
            for param in task["hyperparameters"]:
                assert param["type"] in {"int", "float", "bool", "str"}
                if "min" in param:  # the default itself must be inside the advertised range
                    assert param["min"] <= param["default"] <= param["max"], param


def test_backend_default_hyperparameters_pass_every_plugin() -> None:
    """What the backend sends by default (services/domain/jobs.py) is valid for every plugin."""
    from trainer_runner.plugins import PLUGINS
    from trainer_runner.schemas import StartJobRequest

    backend_defaults = {"epochs": 5, "imgsz": 320, "batch": 16, "lr0": 0.01, "seed": 0}
    for name, plugin in PLUGINS.items():
        for task, models in plugin.spec.tasks.items():
            request = StartJobRequest.model_validate(
                {
                    **VALID,
                    "framework": name,
                    "task": task,
                    "model": models[0],
                    "hyperparameters": backend_defaults,
                }
            )
            plugin.validate(request)


def test_unknown_job_is_404(client: TestClient) -> None:
    assert client.get("/jobs/nope").status_code == 404
    assert client.post("/jobs/nope/cancel").status_code == 404
    assert client.get("/healthz").json()["status"] == "ok"


def test_signature_known_answer() -> None:
    body = b'{"job_id":"42","type":"heartbeat"}'
    # Known answer from `printf '1700000000.<body>' | openssl dgst -sha256 -hmac secret`.
    expected = "1c9c18989465c356b74f7f49596db5efef00125b53d4b34f563dd2bb917247d0"
    assert sign("secret", 1700000000, body) == expected
    headers = signed_headers("secret", body, timestamp=1700000000)
    assert headers[TIMESTAMP_HEADER] == "1700000000"
    assert headers[SIGNATURE_HEADER] == expected
    assert sign("other", 1700000000, body) != expected


def test_parse_s3_uri() -> None:
    uri = parse_s3_uri("s3://vtp/projects/1/jobs/42/")
    assert (uri.bucket, uri.key) == ("vtp", "projects/1/jobs/42/")
    assert str(uri.join("checkpoints/last.pt")) == "s3://vtp/projects/1/jobs/42/checkpoints/last.pt"
    with pytest.raises(ValueError):
        parse_s3_uri("/local/path")
