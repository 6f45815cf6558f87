"""Several jobs at once, each on what it asked for; a dead node is a lost attempt.

Real training on tiny data (2 epochs, 64 px), a real Ray cluster on loopback, fake GPUs: a Ray
node declares `--num-gpus=1`, the local executor `TRAINER_GPUS=2`. What is checked is the
placement (which node, which CUDA_VISIBLE_DEVICES), not CUDA itself.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fleet.conftest import executor_env, trainer
from tests.trainer.conftest import CallbackReceiver, S3Server, TrainerService, wait_until
from tests.utils.ray_cluster import RayCluster
from trainer_runner.executors.ray import submission_id
from trainer_runner.storage import parse_s3_uri

pytestmark = pytest.mark.fleet


def _job_log(s3: S3Server, finished: dict[str, Any]) -> list[dict[str, Any]]:
    """The job's own log, as the job uploaded it to storage."""
    uri = parse_s3_uri(finished["artifacts"]["log"])
    body = s3.client.get_object(Bucket=uri.bucket, Key=uri.key)["Body"].read().decode()
    return [json.loads(line) for line in body.splitlines() if line.strip()]


def _started_line(s3: S3Server, finished: dict[str, Any]) -> dict[str, Any]:
    return next(line for line in _job_log(s3, finished) if line["message"] == "job started")


def _overlap(receiver: CallbackReceiver, a: str, b: str) -> bool:
    """Both jobs had reported an epoch before either finished: they ran at the same time."""
    with receiver.lock:
        events = list(receiver.events)
    order = [(e["job_id"], e["type"]) for e in events]
    first_finish = min(order.index((a, "finished")), order.index((b, "finished")))
    return (a, "epoch") in order[:first_finish] and (b, "epoch") in order[:first_finish]


# -- local executor ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def local_trainer(tmp_path_factory: pytest.TempPathFactory, s3_server: S3Server) -> Iterator[TrainerService]:
    with trainer(tmp_path_factory.mktemp("local-2gpu"), s3_server, executor_env("local", None)) as service:
        yield service


def test_local_two_gpu_jobs_run_at_once_on_different_gpus_and_a_third_waits(
    local_trainer: TrainerService, callback_receiver: CallbackReceiver, dataset_uri: str, s3_server: S3Server
) -> None:
    ids = ["gpu-local-1", "gpu-local-2"]
    for job_id in ids:
        request = local_trainer.job_request(job_id, dataset_uri, callback_receiver, resources={"gpus": 1})
        assert local_trainer.client.post("/jobs", json=request).status_code == 202

    third = local_trainer.job_request("gpu-local-3", dataset_uri, callback_receiver, resources={"gpus": 1})
    response = local_trainer.client.post("/jobs", json=third)
    assert response.status_code == 429, response.text
    assert response.json()["waiting_for"] == "1 GPU"
    node = local_trainer.client.get("/capacity").json()["nodes"][0]
    assert (node["gpus_free"], node["cpus_free"]) == (0, 0.0)  # GPU jobs took a CPU slot each

    finished = [callback_receiver.wait_for(job_id, "finished", timeout_s=240)[0] for job_id in ids]
    assert [f["state"] for f in finished] == ["succeeded", "succeeded"], finished
    assert _overlap(callback_receiver, *ids)
    seen = sorted(_started_line(s3_server, f)["cuda_visible_devices"] for f in finished)
    assert seen == ["0", "1"]  # each its own GPU, never the same one twice
    # Once they are done, the third fits.
    wait_until(lambda: local_trainer.client.post("/jobs", json=third).status_code == 202, 30, "third job")
    (done,) = callback_receiver.wait_for("gpu-local-3", "finished", timeout_s=240)
    assert done["state"] == "succeeded"
    assert _started_line(s3_server, done)["cuda_visible_devices"] in {"0", "1"}


def test_local_cpu_job_sees_no_gpu(
    local_trainer: TrainerService, callback_receiver: CallbackReceiver, dataset_uri: str, s3_server: S3Server
) -> None:
    request = local_trainer.job_request("cpu-local", dataset_uri, callback_receiver)
    request["hyperparameters"] = {**request["hyperparameters"], "epochs": 1}
    assert local_trainer.client.post("/jobs", json=request).status_code == 202
    (finished,) = callback_receiver.wait_for("cpu-local", "finished", timeout_s=240)
    assert finished["state"] == "succeeded"
    assert _started_line(s3_server, finished)["cuda_visible_devices"] == ""


# -- Ray executor --------------------------------------------------------------------------------


def _ray_job(cluster: RayCluster, job_id: str) -> dict[str, Any]:
    return httpx.get(f"{cluster.dashboard_url}/api/jobs/{submission_id(job_id, 1)}", timeout=10).json()


def test_ray_two_jobs_run_at_once_on_different_nodes(
    ray_trainer: TrainerService,
    ray_cluster: RayCluster,
    callback_receiver: CallbackReceiver,
    dataset_uri: str,
    s3_server: S3Server,
) -> None:
    ids = {"ray-a": "gpu_a", "ray-b": "gpu_b"}
    for job_id, accelerator in ids.items():
        resources = {"gpus": 1, "accelerator": accelerator}
        request = ray_trainer.job_request(job_id, dataset_uri, callback_receiver, resources=resources)
        response = ray_trainer.client.post("/jobs", json=request)
        assert response.status_code == 202, response.text

    # Both GPUs are taken now: a third GPU job is refused, not left pending in Ray.
    third = ray_trainer.job_request("ray-c", dataset_uri, callback_receiver, resources={"gpus": 1})
    response = ray_trainer.client.post("/jobs", json=third)
    assert response.status_code == 429 and response.json()["waiting_for"] == "1 GPU"
    assert httpx.get(f"{ray_cluster.dashboard_url}/api/jobs/{submission_id('ray-c', 1)}").status_code == 404

    finished = [callback_receiver.wait_for(job_id, "finished", timeout_s=300)[0] for job_id in ids]
    assert [f["state"] for f in finished] == ["succeeded", "succeeded"], finished
    assert _overlap(callback_receiver, *ids)
    nodes = {name: node.node_id for name, node in zip("hab", ray_cluster.nodes, strict=False)}
    placed = {job_id: _ray_job(ray_cluster, job_id)["driver_node_id"] for job_id in ids}
    assert placed == {"ray-a": nodes["a"], "ray-b": nodes["b"]}
    # Ray's status follows once the job's process has exited (after delivering its callbacks).
    wait_until(
        lambda: [ray_trainer.client.get(f"/jobs/{j}").json()["state"] for j in ids] == ["succeeded"] * 2,
        60,
        "Ray to report both jobs succeeded",
    )
    # The job's own log went to storage from the node, whatever happens to the node later.
    assert _started_line(s3_server, finished[0])["resources"]["accelerator"] == "gpu_a"


def test_ray_node_killed_mid_epoch_is_reported_lost(
    ray_trainer: TrainerService,
    ray_cluster: RayCluster,
    callback_receiver: CallbackReceiver,
    dataset_uri: str,
    tmp_path: Path,
) -> None:
    # A node of its own, so the session's two nodes stay for the other tests.
    node = ray_cluster.add_node("c", cpus=2, gpus=1, resources={"accelerator:gpu_c": 1})
    request = ray_trainer.job_request(
        "ray-killed", dataset_uri, callback_receiver, resources={"gpus": 1, "accelerator": "gpu_c"}
    )
    request["hyperparameters"] = {**request["hyperparameters"], "epochs": 50}
    assert ray_trainer.client.post("/jobs", json=request).status_code == 202
    callback_receiver.wait_for("ray-killed", "epoch", timeout_s=240)
    status_file = ray_trainer.scratch / "jobs" / "ray-killed-1" / "status.json"
    job_pid = json.loads(status_file.read_text())["pid"]

    node.kill()  # the machine is gone: raylet, workers and the job's process with it

    wait_until(lambda: not Path(f"/proc/{job_pid}").exists(), 5, "the job's process to die with its node")
    (finished,) = callback_receiver.wait_for("ray-killed", "finished", timeout_s=90)
    assert finished["state"] == "failed"
    assert finished["error"]["kind"] == "lost", finished
    status = ray_trainer.client.get("/jobs/ray-killed").json()
    assert status["state"] == "failed" and status["error"]["kind"] == "lost"
    # The dead node leaves the capacity; the accelerator it had is now nobody's.
    wait_until(
        lambda: all(n["accelerator"] != "gpu_c" for n in ray_trainer.client.get("/capacity").json()["nodes"]),
        60,
        "the dead node to leave the capacity",
    )
    retry = {**request, "attempt": 2}
    response = ray_trainer.client.post("/jobs", json=retry)
    assert response.status_code == 429 and "no node has accelerator 'gpu_c'" in response.json()["detail"]
