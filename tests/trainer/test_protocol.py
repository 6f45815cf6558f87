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


def test_unknown_framework_and_reserved_hyperparameters_are_422(client: TestClient) -> None:
    assert client.post("/jobs", json={**VALID, "framework": "caffe"}).status_code == 422
    response = client.post("/jobs", json={**VALID, "hyperparameters": {"data": "/etc/x.yaml"}})
    assert response.status_code == 422
    assert "data" in response.json()["detail"]
    response = client.post("/jobs", json={**VALID, "hyperparameters": {"epochs": "many"}})
    assert response.status_code == 422 and "epochs" in response.json()["detail"]
    response = client.post("/jobs", json={**VALID, "model": "yolo11n.pt"})
    assert response.status_code == 422 and "YAML" in response.json()["detail"]


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
