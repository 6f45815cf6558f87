"""The whole loop as a user runs it: upload -> train -> results, then a restart loses nothing."""

from __future__ import annotations

import os
from pathlib import Path

import boto3
import pytest
from mlflow.tracking import MlflowClient
from playwright.sync_api import Browser

from services.infra.settings import Settings
from services.runtime import sample_data
from tests.utils import servers
from tests.utils.browser import sign_in
from tests.utils.stack import ROOT, Api, StackProcess

pytestmark = pytest.mark.e2e
METRIC_KEYS = {"train_box_loss", "val_box_loss", "precision", "recall", "map50", "map50_95"}


def _s3(stack: StackProcess):  # noqa: ANN202
    defaults = Settings()
    return boto3.client(
        "s3",
        endpoint_url=stack.s3_url,
        aws_access_key_id=defaults.s3_access_key,
        aws_secret_access_key=defaults.s3_secret_key,
        region_name="us-east-1",
    )


def _trainer_process(stack: StackProcess) -> int:
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        port = f"TRAINER_PORT={stack.ports['trainer']}".encode()
        if b"trainer_runner" in cmdline and port in environ:
            return int(pid)
    raise AssertionError("trainer process not found")


def upload_and_train(api: Api, *, epochs: int, seed: int) -> tuple[int, dict, dict]:
    pid = api.project_id()
    data = sample_data.yolo_zip(train=32, val=8, seed=seed)
    response = api.http.post(
        f"/projects/{pid}/datasets",
        data={"name": f"shapes-{seed}"},
        files={"file": ("shapes.zip", data, "application/zip")},
    )
    assert response.status_code == 201, response.text
    version = response.json()
    job = api.start_job(pid, version["id"], epochs=epochs)
    assert job["state"] == "queued"
    return pid, version, api.wait_finished(pid, job["id"], timeout_s=400)


def assert_trained(api: Api, stack: StackProcess, pid: int, job: dict, epochs: int) -> dict:
    assert job["state"] == "succeeded", job
    detail = api.job(pid, job["id"])
    assert [m["epoch"] for m in detail["metrics"]] == list(range(epochs))
    for point in detail["metrics"]:
        assert set(point["metrics"]) >= METRIC_KEYS, point
        assert point["metrics"]["train_box_loss"] > 0
    for name, min_size in (
        ("last_checkpoint", 100_000),
        ("best_checkpoint", 100_000),
        ("results_csv", 10),
        ("log", 10),
    ):
        bucket, _, key = detail["artifacts"][name].removeprefix("s3://").partition("/")
        assert key.startswith(f"projects/{pid}/jobs/{job['id']}/")
        assert _s3(stack).head_object(Bucket=bucket, Key=key)["ContentLength"] > min_size, name
    client = MlflowClient(tracking_uri=stack.mlflow_url)
    run = client.get_run(detail["mlflow_run_id"])
    assert run.data.params["epochs"] == str(epochs)
    for key in METRIC_KEYS:
        history = {(h.step, round(h.value, 6)) for h in client.get_metric_history(run.info.run_id, key)}
        assert history == {(p["epoch"], round(p["metrics"][key], 6)) for p in detail["metrics"]}, key
    return detail


def test_upload_train_restart(stack: StackProcess, api: Api, browser: Browser) -> None:
    # The demo account and project exist, with a sample dataset ready to train (the session's
    # stack is shared: other tests may have added datasets to it before this one).
    pid = api.project_id()
    assert "shapes (sample)" in [d["name"] for d in api.datasets(pid)]

    pid, version, job = upload_and_train(api, epochs=2, seed=7)
    detail = assert_trained(api, stack, pid, job, epochs=2)

    # The trainer ran with its own cwd, HOME and scratch space, apart from the backend's.
    trainer = _trainer_process(stack)
    environ = dict(
        item.split("=", 1) for item in Path(f"/proc/{trainer}/environ").read_text().split("\0") if "=" in item
    )
    trainer_paths = [
        Path(os.readlink(f"/proc/{trainer}/cwd")),
        Path(environ["HOME"]),
        Path(environ["TRAINER_SCRATCH_DIR"]),
    ]
    for path in trainer_paths:
        assert not path.is_relative_to(stack.data_dir) and not path.is_relative_to(ROOT), path
    assert "VTP_DATABASE_URL" not in environ and "VTP_DATA_DIR" not in environ
    assert Path(environ["TRAINER_SCRATCH_DIR"]).is_dir()

    # Stop everything and start again on the same data directory: nothing is lost.
    stack.stop()
    stack.start()
    # The second start serves the frontend the first one built and kept (unchanged sources):
    # its pages talk to this stack's port, so signing in works through the websocket.
    assert "vtp: web: the frontend built before from these sources" in "\n".join(stack.lines)
    page = sign_in(browser.new_page(), stack)
    page.wait_for_selector(f"#jobs-table tr[data-job-id='{job['id']}']")
    page.close()
    again = Api(stack.api_url, stack.username, stack.password)
    assert again.job(pid, job["id"]) == detail
    assert version["id"] in [d["id"] for d in again.datasets(pid)]
    assert_trained(again, stack, pid, again.job(pid, job["id"]), epochs=2)


@pytest.mark.postgres
def test_same_loop_on_postgresql(tmp_path: Path, output_dir: Path) -> None:
    with servers.postgres() as database_url:
        stack = StackProcess(
            data_dir=tmp_path / "data",
            trainer_dir=tmp_path / "trainer",
            log_path=output_dir / "stack-postgres.log",
            extra_env={"VTP_DATABASE_URL": database_url},
        )
        stack.start()
        try:
            api = Api(stack.api_url, stack.username, stack.password)
            pid, _version, job = upload_and_train(api, epochs=1, seed=3)
            assert_trained(api, stack, pid, job, epochs=1)
            assert not (stack.data_dir / "vtp.db").exists()
        finally:
            stack.stop()
