"""Fleet fixtures: one real Ray cluster per session (a head and two worker nodes on loopback)
and the trainer service under each executor, with the trainer tests' S3 server and callback
receiver."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from tests.trainer import conftest as trainer_fixtures
from tests.trainer.conftest import (
    ACCESS_KEY,
    ROOT,
    SECRET_KEY,
    CallbackReceiver,
    S3Server,
    TrainerService,
    _stop,
    wait_until,
)
from tests.utils.ray_cluster import RayCluster
from tests.utils.servers import free_port

# The trainer tests' fixtures, shared: a real S3 server, a synthetic dataset, a callback receiver.
s3_server = trainer_fixtures.s3_server
dataset_uri = trainer_fixtures.dataset_uri
callback_receiver = trainer_fixtures.callback_receiver

# Worker nodes: accelerator types stand in as custom resources; each declares one GPU (Ray
# trusts the count) and two CPUs, so a GPU job and a CPU job can share a node.
NODE_A = {"cpus": 2, "gpus": 1, "resources": {"accelerator:gpu_a": 1}}
NODE_B = {"cpus": 2, "gpus": 1, "resources": {"accelerator:gpu_b": 1}}


@pytest.fixture(scope="session")
def ray_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RayCluster]:
    cluster = RayCluster(log_dir=tmp_path_factory.mktemp("ray-logs"))
    try:
        cluster.start()
        cluster.add_node("a", **NODE_A)
        cluster.add_node("b", **NODE_B)
        yield cluster
    finally:
        cluster.stop()


@contextmanager
def trainer(base: Path, s3: S3Server, env: dict[str, str]) -> Iterator[TrainerService]:
    """`python -m trainer_runner` as a real subprocess with `env` on top of the test defaults."""
    for name in ("home", "cwd", "scratch"):
        (base / name).mkdir(parents=True, exist_ok=True)
    port = free_port()
    full_env = {
        **os.environ,
        "HOME": str(base / "home"),
        "PYTHONPATH": str(ROOT),
        "TRAINER_PORT": str(port),
        "TRAINER_SCRATCH_DIR": str(base / "scratch"),
        "TRAINER_RETRY_AFTER_S": "3",
        "TRAINER_S3_ENDPOINT_URL": s3.endpoint,
        "TRAINER_S3_ACCESS_KEY": ACCESS_KEY,
        "TRAINER_S3_SECRET_KEY": SECRET_KEY,
        "TRAINER_MLFLOW_TRACKING_URI": "",
        "TRAINER_TORCH_THREADS": "1",  # two jobs at once on a small machine
        "TRAINER_CHECKPOINT_INTERVAL_S": "0",
        **env,
    }
    log_path = base / "trainer.log"
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "trainer_runner"],
            cwd=base / "cwd",
            env=full_env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    client = httpx.Client(base_url=url, timeout=30)

    def healthy() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"trainer exited:\n{log_path.read_text()[-3000:]}")
        try:
            return client.get("/healthz").status_code == 200
        except httpx.TransportError:
            return False

    try:
        wait_until(healthy, 30, "trainer /healthz")
        yield TrainerService(url=url, client=client, scratch=base / "scratch", log_path=log_path)
    finally:
        client.close()
        _stop(process)


def executor_env(name: str, cluster: RayCluster | None) -> dict[str, str]:
    """Local: two fake GPUs and two CPU slots on this machine. Ray: the session's cluster."""
    if name == "local":
        return {"TRAINER_EXECUTOR": "local", "TRAINER_GPUS": "2", "TRAINER_CPU_SLOTS": "2"}
    assert cluster is not None
    return {
        "TRAINER_EXECUTOR": "ray",
        "TRAINER_RAY_ADDRESS": cluster.dashboard_url,
        "TRAINER_RAY_PYTHON": sys.executable,  # the Python on each node with trainer_runner installed
    }


@pytest.fixture(scope="module", params=["local", "ray"])
def fleet_trainer(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, s3_server: S3Server
) -> Iterator[TrainerService]:
    """The same trainer under each executor; the contract tests run against both."""
    cluster = request.getfixturevalue("ray_cluster") if request.param == "ray" else None
    base = tmp_path_factory.mktemp(f"trainer-{request.param}")
    with trainer(base, s3_server, executor_env(request.param, cluster)) as service:
        service.executor = request.param  # type: ignore[attr-defined]
        yield service


@pytest.fixture(scope="module")
def ray_trainer(
    tmp_path_factory: pytest.TempPathFactory, s3_server: S3Server, ray_cluster: RayCluster
) -> Iterator[TrainerService]:
    with trainer(
        tmp_path_factory.mktemp("trainer-ray"), s3_server, executor_env("ray", ray_cluster)
    ) as service:
        yield service


__all__ = ["CallbackReceiver", "trainer"]
