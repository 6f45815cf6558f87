"""Backend and trainer keep separate copies of the wire protocol; these tests hold them together."""

from __future__ import annotations

import json
import time

import pytest

from services.domain import catalog, jobs
from services.domain.models import Job
from services.infra import signing
from trainer_runner import callbacks as trainer_callbacks
from trainer_runner.plugins import PLUGINS
from trainer_runner.schemas import CallbackEvent, StartJobRequest

pytestmark = pytest.mark.isolation


def _trainer_catalog() -> catalog.Catalog:
    """The catalogue exactly as the trainer's GET /plugins builds it."""
    return catalog.Catalog({"frameworks": [plugin.spec.describe() for plugin in PLUGINS.values()]})


def _job() -> Job:
    return Job(
        id=42,
        project_id=3,
        dataset_version_id=7,
        created_by=1,
        name="j",
        framework="ultralytics",
        task="detect",
        model="yolo11n.yaml",
        hyperparameters=jobs.validate_hyperparameters({}, plugins=_trainer_catalog()),
        callback_secret="s" * 64,
    )


def test_dispatch_spec_is_a_valid_trainer_request() -> None:
    spec = jobs.dispatch_spec(
        _job(),
        dataset_uri="s3://vtp/projects/3/datasets/1/v1/",
        callback_url="http://127.0.0.1:3000/api/v1/trainer/callbacks/42",
        heartbeat_s=5,
    )
    request = StartJobRequest.model_validate(spec)
    assert request.output_uri == "s3://vtp/projects/3/jobs/42/"
    assert set(spec) == set(StartJobRequest.model_fields)


def test_trainer_signatures_verify_on_the_backend() -> None:
    body = json.dumps({"event_id": "e1", "type": "heartbeat"}).encode()
    headers = trainer_callbacks.signed_headers("per-job-secret", body)
    assert signing.verify(
        "per-job-secret", headers[signing.TIMESTAMP_HEADER], headers[signing.SIGNATURE_HEADER], body
    )
    assert not signing.verify(
        "other-secret", headers[signing.TIMESTAMP_HEADER], headers[signing.SIGNATURE_HEADER], body
    )
    assert not signing.verify(
        "per-job-secret", headers[signing.TIMESTAMP_HEADER], headers[signing.SIGNATURE_HEADER], body + b" "
    )
    now = int(time.time())
    assert trainer_callbacks.sign("k", now, body) == signing.sign("k", now, body)


def test_both_copies_of_the_callback_event_have_the_same_fields() -> None:
    """The backend validates every callback against its own model: a field the trainer sends that the
    backend's copy lacks would be dropped without a word, and one only the backend has is never sent."""
    from services.infra.trainer_protocol import TrainerError, TrainerEvent
    from trainer_runner.schemas import CallbackError

    assert set(TrainerEvent.model_fields) == set(CallbackEvent.model_fields)
    assert set(TrainerError.model_fields) == set(CallbackError.model_fields)


def test_every_trainer_event_validates_on_the_backend() -> None:
    from services.infra.trainer_protocol import TrainerEvent

    for event in (
        CallbackEvent(job_id="1", attempt=1, type="started", state="running"),
        CallbackEvent(job_id="1", attempt=1, type="epoch", state="running", epoch=3, checkpoint_epoch=2),
        CallbackEvent(
            job_id="1", attempt=2, type="finished", state="failed", error={"kind": "user", "message": "m"}
        ),
    ):
        parsed = TrainerEvent.model_validate_json(event.model_dump_json())
        assert parsed.model_dump() == event.model_dump()
