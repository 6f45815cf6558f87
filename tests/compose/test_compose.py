"""Tier 2 for real: the images built here, the stack up in Docker Compose, the loop a user runs.

One stack for the module (its own project name, ports and volumes; removed at the end, images
kept): build (`make compose-images`, cached layers), `up --wait`, upload through the REST API,
train, metrics in the API and the run in MLflow; the trainer's isolation inside Compose; the
trainer container SIGKILLed mid-epoch and the job resumed when it comes back; `docker compose
restart` losing nothing.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from mlflow.tracking import MlflowClient

from services.runtime import sample_data
from tests.utils.servers import free_port
from tests.utils.stack import BIN, ROOT, Api

# The module shares one stack: its setup (build check, `up --wait`) counts against the first test.
pytestmark = [pytest.mark.compose, pytest.mark.timeout(1200)]
PROJECT = "vtp-test"
OVERRIDE = Path(__file__).with_name("override.yaml")
METRIC_KEYS = {"train_box_loss", "val_box_loss", "precision", "recall", "map50", "map50_95"}
PASSWORD_LINE = re.compile(r"user (\S+)\s+password (\S+)")


@dataclass
class ComposeStack:
    env: dict[str, str]
    web_port: int
    mlflow_port: int
    log_path: Path
    username: str = ""
    password: str = ""

    def run(self, *args: str, timeout: float = 600, check: bool = True) -> subprocess.CompletedProcess[str]:
        argv = [
            str(BIN / "docker-compose"),
            "-f",
            str(ROOT / "docker" / "compose.yaml"),
            "-f",
            str(OVERRIDE),
            "--project-name",
            PROJECT,
            *args,
        ]
        result = subprocess.run(argv, env=self.env, capture_output=True, text=True, timeout=timeout)
        if check and result.returncode != 0:
            self.save_logs()
            raise AssertionError(f"docker compose {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
        return result

    def save_logs(self) -> None:
        logs = self.run("logs", "--no-color", "--timestamps", timeout=120, check=False)
        self.log_path.write_text(logs.stdout + logs.stderr)

    def exec_python(self, service: str, code: str) -> subprocess.CompletedProcess[str]:
        return self.run("exec", "-T", service, "python", "-c", code, check=False, timeout=120)

    def container(self, service: str) -> str:
        return self.run("ps", "-q", service).stdout.strip()

    def api(self) -> Api:
        return Api(f"http://127.0.0.1:{self.web_port}", self.username, self.password)

    def wait_ready(self, timeout_s: float = 180) -> None:
        """Wait until the web app answers through the published port.

        `up --wait` right after `restart` can return on the health status the container had
        before it restarted, while Docker's port proxy already accepts connections and drops
        them until the app listens.
        """
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{self.web_port}/readyz", timeout=5).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                self.save_logs()
                raise AssertionError(f"the web app did not answer /readyz within {timeout_s:.0f}s")
            time.sleep(1)


def _make(target: str, timeout: float) -> subprocess.CompletedProcess[str]:
    argv = ["make", "--no-print-directory", target]
    return subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def _engine_or_skip() -> None:
    """Start the engine from the project's own Makefile target; skip only where none can start."""
    result = _make("compose-engine", timeout=600)
    if result.returncode != 0:
        reason = (result.stderr.strip() or result.stdout.strip()).splitlines()[-1:] or ["no output"]
        pytest.skip(f"no container engine could be started here: {reason[0]}")


@pytest.fixture(scope="module")
def compose_stack(output_dir: Path) -> Iterator[ComposeStack]:
    _engine_or_skip()
    started = time.monotonic()
    build = _make("compose-images", timeout=3600)
    assert build.returncode == 0, f"make compose-images failed:\n{build.stdout[-4000:]}{build.stderr[-4000:]}"
    print(f"\ncompose: images ready in {time.monotonic() - started:.0f}s")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VTP_", "TRAINER_", "COMPOSE_"))}
    stack = ComposeStack(
        env={**env, "VTP_WEB_PORT": str(free_port()), "VTP_MLFLOW_PORT": str(free_port())},
        web_port=0,
        mlflow_port=0,
        log_path=output_dir / "compose.log",
    )
    stack.web_port, stack.mlflow_port = int(stack.env["VTP_WEB_PORT"]), int(stack.env["VTP_MLFLOW_PORT"])
    stack.run("down", "--volumes", "--remove-orphans", timeout=300)  # leftovers of an interrupted run
    try:
        started = time.monotonic()
        stack.run("up", "--detach", "--wait", "--wait-timeout", "400", timeout=500)
        print(f"compose: up and healthy in {time.monotonic() - started:.0f}s")
        # `up --wait` also returns 0 when a one-shot dependency failed and its dependants never
        # started: check that everything that should run does.
        running = set(stack.run("ps", "--status", "running", "--services").stdout.split())
        assert running >= {"postgres", "redis", "s3", "mlflow", "trainer", "worker", "web"}, running
        match = PASSWORD_LINE.search(stack.run("logs", "--no-color", "migrate").stdout)
        assert match, "the migrate service printed no demo account"
        stack.username, stack.password = match.groups()
        yield stack
    finally:
        stack.save_logs()
        stack.run("down", "--volumes", "--remove-orphans", timeout=300, check=False)


def _upload(api: Api, seed: int) -> tuple[int, int]:
    pid = api.project_id()
    response = api.http.post(
        f"/projects/{pid}/datasets",
        data={"name": f"shapes-compose-{seed}"},
        files={"file": ("shapes.zip", sample_data.yolo_zip(train=32, val=8, seed=seed), "application/zip")},
    )
    assert response.status_code == 201, response.text
    return pid, response.json()["id"]


def _epoch_callbacks(stack: ComposeStack, job_id: int) -> list[dict[str, Any]]:
    """The epoch callbacks the backend stored for a job, read from its PostgreSQL."""
    sql = f"SELECT payload FROM jobevent WHERE job_id = {int(job_id)} AND type = 'epoch' ORDER BY id"
    out = stack.run("exec", "-T", "postgres", "psql", "-U", "vtp", "-d", "vtp", "-At", "-c", sql).stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def test_upload_train_metrics_and_mlflow(compose_stack: ComposeStack) -> None:
    api = compose_stack.api()
    pid, version = _upload(api, seed=11)
    job = api.start_job(pid, version, epochs=2)
    final = api.wait_finished(pid, job["id"], timeout_s=400)
    assert final["state"] == "succeeded", final
    detail = api.job(pid, job["id"])
    assert [m["epoch"] for m in detail["metrics"]] == [0, 1]
    for point in detail["metrics"]:
        assert set(point["metrics"]) >= METRIC_KEYS, point
    files = {a["key"]: a["size"] for a in api.http.get(f"/projects/{pid}/jobs/{job['id']}/artifacts").json()}
    assert any(key.endswith("best.pt") and size > 100_000 for key, size in files.items()), files
    client = MlflowClient(tracking_uri=f"http://127.0.0.1:{compose_stack.mlflow_port}")
    run = client.get_run(detail["mlflow_run_id"])
    assert run.data.params["epochs"] == "2"
    history = {h.step: h.value for h in client.get_metric_history(run.info.run_id, "map50")}
    assert history == {p["epoch"]: pytest.approx(p["metrics"]["map50"]) for p in detail["metrics"]}


ISOLATION_PROBE = """
import json, os, socket, urllib.request
def reach(host, port):
    try:
        socket.create_connection((host, port), 3).close()
        return "open"
    except OSError as exc:
        return type(exc).__name__
try:
    import services  # noqa: F401
    backend_code = True
except ImportError:
    backend_code = False
print(json.dumps({
    "uid": os.getuid(),
    "backend_code": backend_code,
    "backend_env": sorted(k for k in os.environ if k.startswith("VTP_")),
    "backend_files": os.path.exists("/var/lib/vtp") or os.path.exists("/srv/vtp"),
    "postgres": reach("postgres", 5432),
    "redis": reach("redis", 6379),
    "outside": reach("192.0.2.1", 80),
    "web": urllib.request.urlopen("http://web:3000/healthz", timeout=5).status,
    "s3": reach("s3", 9000),
    "mlflow": reach("mlflow", 5000),
}))
"""


def test_trainer_is_isolated_inside_compose(compose_stack: ComposeStack) -> None:
    result = compose_stack.exec_python("trainer", ISOLATION_PROBE)
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    # Its own filesystem: none of the backend's code, files or settings; not root.
    assert seen["uid"] != 0
    assert seen["backend_code"] is False and seen["backend_files"] is False
    assert seen["backend_env"] == []
    # Its own network: the backend only over HTTP, plus S3 and MLflow; no database, no queue,
    # nothing outside the stack.
    assert seen["postgres"] != "open" and seen["redis"] != "open" and seen["outside"] != "open", seen
    assert seen["web"] == 200 and seen["s3"] == "open" and seen["mlflow"] == "open", seen
    # The backend, for contrast, does reach its database (the probe itself can tell).
    backend = compose_stack.exec_python("worker", ISOLATION_PROBE)
    assert json.loads(backend.stdout.strip().splitlines()[-1])["postgres"] == "open"


def test_trainer_container_killed_mid_epoch_resumes(compose_stack: ComposeStack) -> None:
    api = compose_stack.api()
    pid = api.project_id()
    version = next(d["id"] for d in api.datasets(pid) if d["name"] == "shapes (sample)")
    epochs = 6
    job = api.start_job(pid, version, epochs=epochs, imgsz=96)
    deadline = time.monotonic() + 300
    while len(api.job(pid, job["id"])["metrics"]) < 2:
        assert time.monotonic() < deadline, "training did not reach epoch 2"
        time.sleep(0.3)
    container = compose_stack.container("trainer")
    inspect = ["docker", "inspect", "-f", "{{.State.Pid}} {{.RestartCount}}", container]
    init_pid, restarts = subprocess.run(inspect, capture_output=True, text=True, check=True).stdout.split()
    os.kill(int(init_pid), signal.SIGKILL)  # the container's init: everything in it dies at once
    killed_at = time.monotonic()
    final = api.wait_finished(pid, job["id"], timeout_s=400)
    print(f"\ncompose: trainer SIGKILL mid-epoch -> {final['state']} in {time.monotonic() - killed_at:.0f}s")
    assert final["state"] == "succeeded", final
    assert final["attempt"] == 2, final
    assert [m["epoch"] for m in final["metrics"]] == list(range(epochs))
    second = [e["epoch"] for e in _epoch_callbacks(compose_stack, job["id"]) if e.get("attempt") == 2]
    assert second and min(second) >= 2 and second == list(range(min(second), epochs)), second
    _, after = subprocess.run(inspect, capture_output=True, text=True, check=True).stdout.split()
    assert int(after) > int(restarts), "the restart policy brought the same container back"


def test_restart_loses_nothing(compose_stack: ComposeStack) -> None:
    api = compose_stack.api()
    pid = api.project_id()
    jobs = api.http.get(f"/projects/{pid}/jobs", params={"state": "succeeded"}).raise_for_status().json()
    finished = list(jobs)
    assert finished, "the tests before this one trained jobs"
    before = {j["id"]: api.job(pid, j["id"]) for j in finished}
    datasets = {d["id"] for d in api.datasets(pid)}
    files = {j: api.http.get(f"/projects/{pid}/jobs/{j}/artifacts").json() for j in before}

    started = time.monotonic()
    compose_stack.run("restart", timeout=400)
    compose_stack.run("up", "--detach", "--wait", "--wait-timeout", "300", timeout=400)
    compose_stack.wait_ready()
    print(f"\ncompose: restart + healthy in {time.monotonic() - started:.0f}s")

    again = compose_stack.api()
    assert {d["id"] for d in again.datasets(pid)} == datasets
    client = MlflowClient(tracking_uri=f"http://127.0.0.1:{compose_stack.mlflow_port}")
    for job_id, detail in before.items():
        assert again.job(pid, job_id) == detail
        after = again.http.get(f"/projects/{pid}/jobs/{job_id}/artifacts").json()
        assert {(a["key"], a["size"]) for a in after} == {(a["key"], a["size"]) for a in files[job_id]}
        assert client.get_run(detail["mlflow_run_id"]).info.status == "FINISHED"
