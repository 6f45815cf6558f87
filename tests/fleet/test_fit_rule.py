"""The fit rule, capacity and the 429 of protocol v1.4, without training."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from trainer_runner.lost import MemoryWatch, describe_exit, oom_kills
from trainer_runner.resources import describe, fits, waiting_for
from trainer_runner.schemas import NodeCapacity, Resources
from trainer_runner.server import create_app
from trainer_runner.settings import TrainerSettings

pytestmark = pytest.mark.fleet

A100 = NodeCapacity(
    node_id="a",
    alive=True,
    cpus_total=8,
    cpus_free=8,
    gpus_total=2,
    gpus_free=1,
    accelerator="A100",
)
CPU_ONLY = NodeCapacity(node_id="c", alive=True, cpus_total=2, cpus_free=0.5, gpus_total=0, gpus_free=0)


def test_fit_rule() -> None:
    assert fits(Resources(gpus=1), A100)
    assert fits(Resources(gpus=1, accelerator="A100"), A100)
    assert not fits(Resources(gpus=2), A100)  # one of two is taken
    assert not fits(Resources(gpus=1, accelerator="H100"), A100)
    assert not fits(Resources(gpus=1), A100.model_copy(update={"alive": False}))
    # A GPU job asking for more CPUs than the node has is capped to the node; a CPU job is not.
    assert fits(Resources(gpus=1, cpus=64), A100)
    assert not fits(Resources(cpus=64), A100)
    assert fits(Resources(cpus=0.5), CPU_ONLY)
    assert not fits(Resources(), CPU_ONLY)


def test_waiting_for_names_what_is_missing() -> None:
    assert waiting_for(Resources(gpus=1), [A100]) is None
    what, detail = waiting_for(Resources(gpus=2, accelerator="A100"), [A100])
    assert what == "2 GPUs (A100)" and "busy" in detail
    what, detail = waiting_for(Resources(gpus=1, accelerator="H100"), [A100, CPU_ONLY])
    assert what == "1 GPU (H100)"
    assert "no node has accelerator 'H100'" in detail and "A100" in detail
    what, detail = waiting_for(Resources(gpus=4), [A100])
    assert "no node is large enough" in detail
    assert describe(Resources()) == "a CPU slot"
    assert describe(Resources(cpus=2)) == "2 CPUs"


def _request(job_id: str, **resources: object) -> dict[str, object]:
    return {
        "job_id": job_id,
        "hyperparameters": {"epochs": 1},
        "dataset_uri": "s3://vtp/projects/1/datasets/3/v1/",
        "output_uri": f"s3://vtp/projects/1/jobs/{job_id}/",
        "callback_url": "http://127.0.0.1:9/callbacks",
        "callback_secret": "abc",
        "resources": resources,
    }


def test_capacity_and_429_of_the_local_executor(tmp_path: Path) -> None:
    settings = TrainerSettings(scratch_dir=tmp_path, gpus=2, accelerator="T4", cpu_slots=3)
    with TestClient(create_app(settings)) as client:
        capacity = client.get("/capacity").json()
        assert capacity == {
            "executor": "local",
            "jobs_running": 0,
            "nodes": [
                {
                    "node_id": "local",
                    "alive": True,
                    "cpus_total": 3.0,
                    "cpus_free": 3.0,
                    "gpus_total": 2,
                    "gpus_free": 2,
                    "accelerator": "T4",
                    "memory_gb_free": None,
                }
            ],
        }
        response = client.post("/jobs", json=_request("j1", gpus=1, accelerator="A100"))
        assert response.status_code == 429, response.text
        assert response.headers["Retry-After"] == str(settings.retry_after_s)
        assert response.json()["waiting_for"] == "1 GPU (A100)"
        assert "no node has accelerator 'A100'" in response.json()["detail"]
        response = client.post("/jobs", json=_request("j2", gpus=3))
        assert response.status_code == 429 and response.json()["waiting_for"] == "3 GPUs"
        # Nothing was accepted: the job is unknown, and the capacity unchanged.
        assert client.get("/jobs/j1").status_code == 404
        assert client.get("/capacity").json()["nodes"][0]["gpus_free"] == 2


@pytest.mark.parametrize("bad", [{"gpus": -1}, {"cpus": 0}, {"accelerator": "a b"}, {"memory_gb": 0}])
def test_bad_resources_are_422_naming_the_field(tmp_path: Path, bad: dict[str, object]) -> None:
    client = TestClient(create_app(TrainerSettings(scratch_dir=tmp_path)))
    response = client.post("/jobs", json=_request("j", **bad))
    assert response.status_code == 422
    (error,) = response.json()["detail"]
    assert error["loc"] == ["body", "resources", *bad], error


def test_lost_messages_name_the_signal_and_oom(tmp_path: Path) -> None:
    assert describe_exit(-9).startswith("job process killed by SIGKILL (-9)")
    assert "lower batch or imgsz" not in describe_exit(-9)
    assert "lower batch or imgsz" in describe_exit(-9, "the cgroup's oom_kill count rose")
    assert describe_exit(1) == "job process exited with code 1 without reporting a result"
    # cgroup v2 evidence: memory.events' oom_kill count rising while the job ran.
    events = tmp_path / "memory.events"
    events.write_text("low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n")
    (tmp_path / "memory.max").write_text("max\n")
    watch = MemoryWatch.start(tmp_path)
    assert oom_kills(tmp_path) == 1 and watch.oom_evidence() is None
    events.write_text("low 0\nhigh 0\nmax 9\noom 2\noom_kill 2\n")
    assert watch.oom_evidence() == "the cgroup's oom_kill count rose"
    # Without a count, an RSS near the limit is the evidence.
    (tmp_path / "memory.max").write_text(str(2 * 2**30))
    near = MemoryWatch(cgroup_dir=tmp_path, oom_kills_at_start=None, peak_rss=int(1.9 * 2**30))
    assert near.oom_evidence() == "it used 1.9 of 2.0 GiB"
