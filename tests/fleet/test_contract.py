"""The trainer contract (start, idempotent start, status, cancel, 422s, capacity, 429) against
both executors: a local trainer with two fake GPUs and a trainer in front of a real Ray
cluster. The same requests, the same answers."""

from __future__ import annotations

from typing import Any

import pytest

from tests.fleet.conftest import CallbackReceiver
from tests.trainer.conftest import S3Server, TrainerService, wait_until
from trainer_runner.storage import parse_s3_uri

pytestmark = [pytest.mark.fleet, pytest.mark.trainer]


def _job(
    service: TrainerService, job_id: str, dataset_uri: str, receiver: CallbackReceiver, **kw: Any
) -> dict:
    # The executor is in the id: both executors' runs share one callback receiver and bucket.
    return service.job_request(f"{job_id}-{service.executor}", dataset_uri, receiver, **kw)  # type: ignore[attr-defined]


def _gpus_free(service: TrainerService) -> int:
    return sum(node["gpus_free"] for node in service.client.get("/capacity").json()["nodes"])


def test_start_is_idempotent_and_runs_to_success(
    fleet_trainer: TrainerService, callback_receiver: CallbackReceiver, dataset_uri: str
) -> None:
    request = _job(fleet_trainer, "ok", dataset_uri, callback_receiver, resources={"gpus": 1, "cpus": 1})
    job_id = request["job_id"]
    before = fleet_trainer.client.get("/capacity").json()
    assert before["executor"] == fleet_trainer.executor  # type: ignore[attr-defined]
    free = _gpus_free(fleet_trainer)

    first = fleet_trainer.client.post("/jobs", json=request)
    assert first.status_code == 202, first.text
    assert first.json()["attempt"] == 1 and first.json()["state"] in {"accepted", "running"}
    again = fleet_trainer.client.post("/jobs", json=request)  # a retried dispatch
    assert again.status_code == 202 and again.json()["attempt"] == 1
    # One GPU taken, not two: the second start found the first attempt.
    assert _gpus_free(fleet_trainer) == free - 1

    (finished,) = callback_receiver.wait_for(job_id, "finished", timeout_s=240)
    assert finished["state"] == "succeeded", finished
    assert len(callback_receiver.of(job_id, "started")) == 1
    assert [e["epoch"] for e in callback_receiver.of(job_id, "epoch")] == [0, 1]
    status = wait_until(
        lambda: (s := fleet_trainer.client.get(f"/jobs/{job_id}").json())["state"] == "succeeded" and s,
        30,
        "status succeeded",
    )
    assert status["attempt"] == 1 and status["error"] is None
    wait_until(lambda: _gpus_free(fleet_trainer) == free, 30, "the GPU handed back")


def test_cancel_stops_at_the_next_batch_and_keeps_the_checkpoint(
    fleet_trainer: TrainerService,
    callback_receiver: CallbackReceiver,
    dataset_uri: str,
    s3_server: S3Server,
) -> None:
    request = _job(fleet_trainer, "cancel", dataset_uri, callback_receiver)
    request["hyperparameters"] = {**request["hyperparameters"], "epochs": 50}
    job_id = request["job_id"]
    assert fleet_trainer.client.post("/jobs", json=request).status_code == 202
    callback_receiver.wait_for(job_id, "epoch", timeout_s=240)
    response = fleet_trainer.client.post(f"/jobs/{job_id}/cancel")
    assert response.status_code == 202 and response.json()["attempt"] == 1

    (finished,) = callback_receiver.wait_for(job_id, "finished", timeout_s=120)
    assert finished["state"] == "cancelled", finished
    assert len(callback_receiver.of(job_id, "epoch")) < 50
    last = parse_s3_uri(finished["artifacts"]["last_checkpoint"])
    assert s3_server.client.head_object(Bucket=last.bucket, Key=last.key)["ContentLength"] > 0
    wait_until(
        lambda: fleet_trainer.client.get(f"/jobs/{job_id}").json()["state"] == "cancelled", 30, "cancelled"
    )


def test_bad_requests_are_422_and_start_nothing(
    fleet_trainer: TrainerService, callback_receiver: CallbackReceiver, dataset_uri: str
) -> None:
    request = _job(fleet_trainer, "bad", dataset_uri, callback_receiver)
    for bad in (
        {"resources": {"gpus": -1}},
        {"resources": {"cpus": 0}},
        {"framework": "caffe"},
        {"dataset_uri": "/data/x"},
    ):
        response = fleet_trainer.client.post("/jobs", json={**request, **bad})
        assert response.status_code == 422, (bad, response.text)
    assert fleet_trainer.client.get(f"/jobs/{request['job_id']}").status_code == 404
    assert fleet_trainer.client.post(f"/jobs/{request['job_id']}/cancel").status_code == 404


def test_what_cannot_be_placed_is_429_naming_what_it_waits_for(
    fleet_trainer: TrainerService, callback_receiver: CallbackReceiver, dataset_uri: str
) -> None:
    request = _job(
        fleet_trainer, "h100", dataset_uri, callback_receiver, resources={"gpus": 1, "accelerator": "H100"}
    )
    response = fleet_trainer.client.post("/jobs", json=request)
    assert response.status_code == 429, response.text
    assert int(response.headers["Retry-After"]) >= 1
    body = response.json()
    assert body["waiting_for"] == "1 GPU (H100)"
    assert "no node has accelerator 'H100'" in body["detail"]
    too_big = {**request, "resources": {"gpus": 8}}
    assert fleet_trainer.client.post("/jobs", json=too_big).json()["waiting_for"] == "8 GPUs"
    # Never accepted, so never left pending: nothing to stop, nothing holding resources.
    assert fleet_trainer.client.get(f"/jobs/{request['job_id']}").status_code == 404


def test_capacity_lists_alive_nodes_with_their_accelerators(fleet_trainer: TrainerService) -> None:
    # The gateway's own endpoints answer whatever the executor.
    assert fleet_trainer.client.get("/plugins").json()["frameworks"]
    health = fleet_trainer.client.get("/healthz").json()
    assert health["executor"] == fleet_trainer.executor and health["protocol"] == "1.5"  # type: ignore[attr-defined]
    capacity = fleet_trainer.client.get("/capacity").json()
    nodes = capacity["nodes"]
    assert all(node["alive"] for node in nodes)
    if fleet_trainer.executor == "local":  # type: ignore[attr-defined]
        assert [(n["node_id"], n["gpus_total"], n["cpus_total"]) for n in nodes] == [("local", 2, 2.0)]
    else:  # the two worker nodes; the head runs no jobs
        assert sorted((n["accelerator"], n["gpus_total"], n["cpus_total"]) for n in nodes) == [
            ("gpu_a", 1, 2.0),
            ("gpu_b", 1, 2.0),
        ]
