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


def test_both_copies_of_the_callback_batch_agree() -> None:
    """v1.6: a batch the trainer's outbox builds (events joined as they lie on disk) validates on
    the backend, under the same size limit on both sides."""
    from services.infra import trainer_protocol as wire
    from trainer_runner.schemas import MAX_BATCH_EVENTS, CallbackBatch

    assert set(wire.TrainerBatch.model_fields) == set(CallbackBatch.model_fields)
    assert wire.MAX_BATCH_EVENTS == MAX_BATCH_EVENTS
    events = [
        CallbackEvent(job_id="1", attempt=1, type="epoch", state="running", epoch=n, metrics={"map50": 0.1})
        for n in range(3)
    ]
    body = b'{"events":[' + b",".join(e.model_dump_json().encode() for e in events) + b"]}"
    parsed = wire.TrainerBatch.model_validate_json(body)
    assert [e.model_dump() for e in parsed.events] == [e.model_dump() for e in events]
    assert CallbackBatch.model_validate_json(body).events == events


def test_every_trainer_event_validates_on_the_backend() -> None:
    from services.infra.trainer_protocol import TrainerEvent

    for event in (
        CallbackEvent(job_id="1", attempt=1, type="started", state="running"),
        CallbackEvent(job_id="1", attempt=1, type="epoch", state="running", epoch=3, checkpoint_epoch=2),
        CallbackEvent(
            job_id="1", attempt=2, type="finished", state="failed", error={"kind": "user", "message": "m"}
        ),
        CallbackEvent(
            job_id="1", attempt=1, type="finished", state="failed", error={"kind": "lost", "message": "-9"}
        ),
    ):
        parsed = TrainerEvent.model_validate_json(event.model_dump_json())
        assert parsed.model_dump() == event.model_dump()


def test_resources_and_capacity_models_agree() -> None:
    """The backend's copies of the v1.4 models (services.infra.trainer_protocol) have the same fields
    and defaults, and both sides' fit rule (services.domain.fleet, trainer_runner.resources) agree."""
    from services.domain import fleet
    from services.infra import trainer_protocol as wire
    from trainer_runner import resources as trainer_rules
    from trainer_runner.schemas import Capacity, NodeCapacity, Resources

    for mine, theirs in (
        (wire.Resources, Resources),
        (wire.NodeCapacity, NodeCapacity),
        (wire.Capacity, Capacity),
    ):
        assert set(mine.model_fields) == set(theirs.model_fields), mine
    for name, field in Resources.model_fields.items():
        assert wire.Resources.model_fields[name].default == field.default, name
    spec = jobs.dispatch_spec(_job(), dataset_uri="s3://b/d/", callback_url="http://h/cb", heartbeat_s=5)
    assert StartJobRequest.model_validate(spec).resources == Resources()
    # The one fit rule, on both sides, over a small grid of asks and nodes.
    asks = [
        {},
        {"cpus": 2},
        {"gpus": 1},
        {"gpus": 2, "cpus": 16},
        {"gpus": 1, "accelerator": "A100"},
        {"accelerator": "H100"},
        {"cpus": 0.3},
    ]
    nodes = [
        {
            "node_id": "a",
            "alive": True,
            "cpus_total": 8,
            "cpus_free": 8,
            "gpus_total": 2,
            "gpus_free": 1,
            "accelerator": "A100",
        },
        {"node_id": "c", "alive": True, "cpus_total": 2, "cpus_free": 0.3, "gpus_total": 0, "gpus_free": 0},
        {"node_id": "d", "alive": False, "cpus_total": 8, "cpus_free": 8, "gpus_total": 4, "gpus_free": 4},
    ]
    for ask in asks:
        for node in nodes:
            ours = fleet.fits(wire.Resources.model_validate(ask), wire.NodeCapacity.model_validate(node))
            theirs = trainer_rules.fits(Resources.model_validate(ask), NodeCapacity.model_validate(node))
            assert ours == theirs, (ask, node)


def test_a_lost_attempt_is_what_the_backend_resumes() -> None:
    """Kind `lost` (v1.4) and `transient` (older trainers' dead process, SIGTERM) both resume."""
    from trainer_runner.schemas import CallbackError

    assert "lost" in CallbackError.model_fields["kind"].annotation.__args__  # type: ignore[union-attr]
    assert jobs.is_lost({"kind": "lost", "message": "job process killed by SIGKILL (-9)"})
    assert jobs.is_lost({"kind": "transient", "message": "trainer job process exited with code -9"})
    assert jobs.is_lost(
        {"kind": "transient", "message": "trainer stopped (SIGTERM); resume from last checkpoint"}
    )
    assert not jobs.is_lost({"kind": "user", "message": "bad labels"})
    assert not jobs.is_lost(None)


def test_batch_inference_spec_agrees() -> None:
    """v1.5: the backend's copy of `BatchInference` has the trainer's fields and defaults, and a batch
    job's dispatch spec (over a dataset version, or a zip) is a valid trainer request."""
    from services.infra import trainer_protocol as wire
    from trainer_runner.schemas import BatchInference

    assert set(wire.BatchInference.model_fields) == set(BatchInference.model_fields)
    for name, field in BatchInference.model_fields.items():
        assert wire.BatchInference.model_fields[name].default == field.default, name
    train = StartJobRequest.model_validate(
        jobs.dispatch_spec(_job(), dataset_uri="s3://b/d/", callback_url="http://h/cb", heartbeat_s=5)
    )
    assert train.kind == "train" and train.inference is None

    job = _job()
    job.kind = "batch_inference"
    job.inference = {"model_uri": "s3://vtp/projects/3/jobs/7/checkpoints/best.pt", "conf": 0.4}
    spec = jobs.dispatch_spec(job, dataset_uri="s3://vtp/d/v1/", callback_url="http://h/cb", heartbeat_s=5)
    request = StartJobRequest.model_validate(spec)
    assert request.kind == "batch_inference" and request.dataset_uri == "s3://vtp/d/v1/"
    assert request.inference is not None and request.inference.conf == 0.4
    assert request.inference.source == "dataset"

    job.inference = {**job.inference, "source": "zip", "images_uri": "s3://vtp/projects/3/inference/b.zip"}
    spec = jobs.dispatch_spec(job, dataset_uri="s3://vtp/d/v1/", callback_url="http://h/cb", heartbeat_s=5)
    request = StartJobRequest.model_validate(spec)
    assert request.dataset_uri == "s3://vtp/projects/3/inference/b.zip"
    assert request.inference is not None and request.inference.source == "zip"
